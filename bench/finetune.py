#!/usr/bin/python3
"""PyTorch 1.13 side of bench/finetune.sh: the fine-tuning step of the
downstream benchmark code (engine.py train_one_epoch) on random tensors,
batch 8 at 224x224: classify = torchvision resnet50 with fc
Sequential(Linear(2048, 14), Sigmoid), nn.BCELoss, Adam(2e-4); segment = the
smp-equivalent U-Net of model/testdata/reference.py with an MSE loss (as the
Go side). Run with Debian's /usr/bin/python3."""
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model", "testdata"))
from reference import Unet  # noqa: E402


def main():
    task = sys.argv[1] if len(sys.argv) > 1 else "classify"
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.manual_seed(1)
    n, steps = int(os.environ.get("BATCH", "8")), int(os.environ.get("STEPS", "5"))
    if task == "classify":
        net = torchvision.models.resnet50()
        net.fc = nn.Sequential(nn.Linear(2048, 14), nn.Sigmoid())
        crit, yshape = nn.BCELoss(), (n, 14)
    else:
        net = Unet("resnet50")
        crit, yshape = F.mse_loss, (n, 1, 224, 224)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    net.train()
    times = []
    for s in range(steps + 1):
        x, y = torch.rand(n, 3, 224, 224), torch.rand(*yshape)
        t0 = time.time()
        loss = crit(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s > 0:
            times.append(time.time() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print("torch finetune-%s resnet50 224 batch %d: %.3f img/s (mean of %d steps, %.2f s/step), peak RSS %d MB"
          % (task, n, n * len(times) / sum(times), len(times), sum(times) / len(times), peak))


if __name__ == "__main__":
    main()
