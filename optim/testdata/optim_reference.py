#!/usr/bin/python3
"""Reference for stages/optim_test.go: torch.optim.SGD and Adam (PyTorch 1.13)
on a fixed parameter with the gradients of loss = sum(p * g_t) for 3 steps.
Usage: optim_reference.py OUT.npz"""
import sys

import numpy as np
import torch

g = torch.Generator().manual_seed(0)
p0 = torch.randn(3, 4, generator=g)
grads = [torch.randn(3, 4, generator=g) for _ in range(3)]
out = {"p0": p0.numpy(), "grads": torch.stack(grads).numpy()}
for name, make in [
    ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4)),
    ("sgd_nomomentum", lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0)),
    ("adam", lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.5, 0.999))),
]:
    p = p0.clone().requires_grad_(True)
    opt = make([p])
    for t, gt in enumerate(grads):
        opt.zero_grad()
        (p * gt).sum().backward()
        opt.step()
        out["%s_%d" % (name, t)] = p.detach().clone().numpy()
np.savez(sys.argv[1], **out)
