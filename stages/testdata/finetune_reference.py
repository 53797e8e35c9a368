#!/usr/bin/python3
"""PyTorch reference for one fine-tuning step (Debian python3-torch 1.13,
python3-torchvision 0.14; run with /usr/bin/python3).

  classify OUT.npz   torchvision resnet18 whose fc is Sequential(Linear(512, 4),
                     Sigmoid) as the benchmark code's ClassificationNet (fc
                     N(0, 0.01), bias 0), nn.BCELoss, Adam(lr 2e-4): two steps
                     on two batches of 4 images at 64x64
  segment OUT.npz    the smp-equivalent U-Net of model/testdata/reference.py
                     (resnet18, decoder (32, 16, 16, 8, 8), sigmoid head), the
                     benchmark's torch_dice_coef_loss, Adam(lr 1e-3): two steps

The npz holds the starting state_dict (w0/<key>), the batches (x<i>, y<i>),
each step's loss (loss<i>), the gradients after the last step (g/<key>) and
the state_dict after the last step (w2/<key>).
"""
import importlib.util
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

spec = importlib.util.spec_from_file_location(
    "reference", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "model", "testdata", "reference.py"))
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)


def dice_loss(y_true, y_pred, smooth=1.0):
    # utils.torch_dice_coef_loss of the benchmark code.
    y_true_f = torch.flatten(y_true)
    y_pred_f = torch.flatten(y_pred)
    intersection = torch.sum(y_true_f * y_pred_f)
    return 1. - ((2. * intersection + smooth) / (torch.sum(y_true_f) + torch.sum(y_pred_f) + smooth))


def state(module, prefix):
    return {prefix + k: v.detach().clone().numpy() for k, v in module.state_dict().items()}


def main():
    torch.set_num_threads(2)
    mode, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(11)
    g = torch.Generator().manual_seed(12)
    if mode == "classify":
        net = torchvision.models.resnet18()
        net.fc = nn.Sequential(nn.Linear(512, 4), nn.Sigmoid())
        net.fc[0].weight.data.normal_(mean=0.0, std=0.01)
        net.fc[0].bias.data.zero_()
        criterion = nn.BCELoss()
        opt = torch.optim.Adam(net.parameters(), lr=2e-4)
        xs = [torch.rand(4, 3, 64, 64, generator=g) for _ in range(2)]
        ys = [(torch.rand(4, 4, generator=g) > 0.5).float() for _ in range(2)]
    else:
        net = reference.Unet("resnet18", dec_channels=(32, 16, 16, 8, 8))
        criterion = lambda out, target: dice_loss(out, target)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        xs = [torch.rand(4, 3, 64, 64, generator=g) for _ in range(2)]
        ys = [(torch.rand(4, 1, 64, 64, generator=g) > 0.6).float() for _ in range(2)]
    res = state(net, "w0/")
    net.train()
    for i, (x, y) in enumerate(zip(xs, ys)):
        # engine.py train_one_epoch: forward, loss, zero_grad, backward, step.
        outputs = net(x)
        loss = criterion(outputs, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        res["x%d" % i], res["y%d" % i], res["loss%d" % i] = x.numpy(), y.numpy(), np.array(loss.item())
    for k, p in net.named_parameters():
        res["g/" + k] = p.grad.detach().clone().numpy()
    res.update(state(net, "w2/"))
    np.savez(out, **res)


if __name__ == "__main__":
    main()
