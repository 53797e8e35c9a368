#!/usr/bin/python3
"""Reference for internal/torch's TestAutocastMatchesPyTorch: a small
conv -> batch norm (training) -> ReLU -> pool -> linear network with a
cross-entropy and an MSE loss, forward and losses under
torch.autocast("cpu", dtype=torch.bfloat16), backward outside it, as PyTorch
1.13's AMP recipe does. Writes the inputs and the results to the .npz named by
argv[1]. Run with Debian's /usr/bin/python3 (python3-torch 1.13)."""
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(7)
x = torch.randn(4, 3, 8, 8)
target = torch.randn(4, 6, 8, 8)
conv_w = (0.3 * torch.randn(6, 3, 3, 3)).requires_grad_()
bn_w = (1 + 0.1 * torch.randn(6)).requires_grad_()
bn_b = (0.1 * torch.randn(6)).requires_grad_()
rm, rv = torch.zeros(6), torch.ones(6)
lin_w = (0.3 * torch.randn(5, 6)).requires_grad_()
lin_b = (0.1 * torch.randn(5)).requires_grad_()
labels = torch.tensor([0, 1, 2, 3])
inputs = {k: v.detach().numpy().copy() for k, v in dict(
    x=x, target=target, conv_w=conv_w, bn_w=bn_w, bn_b=bn_b, lin_w=lin_w, lin_b=lin_b).items()}

with torch.autocast("cpu", dtype=torch.bfloat16):
    h = F.conv2d(x, conv_w, padding=1)
    h = F.relu(F.batch_norm(h, rm, rv, bn_w, bn_b, True, 0.1, 1e-5))
    logits = F.linear(F.adaptive_avg_pool2d(h, 1).flatten(1), lin_w, lin_b)
    ce = F.cross_entropy(logits, labels)
    mse = F.mse_loss(h, target)
    loss = ce + mse
loss.backward()
types = {torch.bfloat16: 15, torch.float32: 6}
out = dict(
    h_type=np.array([types[h.dtype]]), logits_type=np.array([types[logits.dtype]]),
    loss_type=np.array([types[loss.dtype]]),
    h=h.detach().float().numpy(), logits=logits.detach().float().numpy(),
    ce=np.array([ce.item()], dtype=np.float32), mse=np.array([mse.item()], dtype=np.float32),
    conv_w_grad=conv_w.grad.numpy(), lin_w_grad=lin_w.grad.numpy(), bn_w_grad=bn_w.grad.numpy(),
    running_mean=rm.numpy(), running_var=rv.numpy(),
)
np.savez(sys.argv[1], **inputs, **out)
