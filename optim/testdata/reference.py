#!/usr/bin/python3
"""Reference for optim/*_test.go, run live by the tests with Debian's
python3-torch 1.13.1.

Reads a JSON request on stdin and writes the learning rates PyTorch computes:
  plateau: torch.optim.lr_scheduler.ReduceLROnPlateau stepped with each loss
           (None in the request stands for NaN); the lr after every step.
  early:   the patience loop of BenchmarkTransferLearning Version1 engine.py
           (classification_engine / segmentation_engine), driven by the
           losses: the epoch index after which it breaks, or -1.
  cosine:  torch.optim.lr_scheduler.CosineAnnealingLR stepped once per epoch;
           the lr after construction and after every step.
  anneal:  utils.cosine_anneal_schedule(t, epochs, lr) for t in range(n),
           computed with numpy as the official code does.
"""
import json
import math
import sys

import numpy as np
import torch


def optimizer(lr):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def nan(v):
    return math.nan if v is None else v


def plateau(req):
    opt = optimizer(req["lr"])
    c = req["config"]
    s = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=c["mode"], factor=c["factor"], patience=c["patience"],
        threshold=c["threshold"], threshold_mode=c["threshold_mode"],
        cooldown=c["cooldown"], min_lr=c["min_lr"], eps=c["eps"])
    out = []
    for loss in req["losses"]:
        s.step(nan(loss))
        out.append(opt.param_groups[0]["lr"])
    return out


def early(req):
    # The loop body of engine.py, reduced to its bookkeeping.
    best_val_loss = req["init_best"]
    patience_counter = 0
    for epoch, loss in enumerate(req["losses"]):
        val_loss = nan(loss)
        if val_loss < best_val_loss:
            best_val_loss = val_loss
            patience_counter = 0
        else:
            patience_counter += 1
        if patience_counter > req["patience"]:
            return epoch
    return -1


def cosine(req):
    opt = optimizer(req["base"])
    if req["last_epoch"] != -1:
        opt.param_groups[0]["initial_lr"] = req["base"]
    s = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=req["tmax"], eta_min=req["eta_min"], last_epoch=req["last_epoch"])
    out = [opt.param_groups[0]["lr"]]
    for _ in range(req["steps"]):
        opt.step()
        s.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def cosine_anneal_schedule(t, epochs, learning_rate):
    T = epochs
    M = 1
    cos_inner = np.pi * (t % (T // M))
    cos_inner /= T // M
    cos_out = np.cos(cos_inner) + 1
    return float(learning_rate / 2 * cos_out)


def anneal(req):
    return [cosine_anneal_schedule(t, req["epochs"], req["lr"]) for t in range(req["n"])]


def main():
    req = json.load(sys.stdin)
    out = {
        "torch": torch.__version__,
        "plateau": [plateau(r) for r in req.get("plateau") or []],
        "early": [early(r) for r in req.get("early") or []],
        "cosine": [cosine(r) for r in req.get("cosine") or []],
        "anneal": [anneal(r) for r in req.get("anneal") or []],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
