#!/usr/bin/python3
"""Learnability of the labelled synthetic data (bench/labeled.sh): trains, for
a fixed wall-clock budget, torchvision's ResNet-18 (multi-label BCE on the four
findings, Adam 1e-3, batch 32, random flips) or a three-level U-Net (Dice loss,
Adam 1e-3, batch 16) on the arrays bench/labeled writes, then reports the test
AUC per finding (scikit-learn) or the test Dice at threshold 0.5.

Usage: labeled.py cls|seg SECONDS DIR
"""
import sys, time
import numpy as np, torch, torchvision
from sklearn.metrics import roc_auc_score
torch.manual_seed(0); torch.set_num_threads(2)
D = sys.argv[3].rstrip("/") + "/"
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
def prep(a):
    x = torch.tensor(a, dtype=torch.float32)[:, None] / 255
    x = x.repeat(1, 3, 1, 1)
    return (x - torch.tensor(mean, dtype=torch.float32)[None, :, None, None]) / torch.tensor(std, dtype=torch.float32)[None, :, None, None]
what = sys.argv[1]
budget = float(sys.argv[2])
if what == "cls":
    xtr, ytr = prep(np.load(D + "train_img.npy")), torch.tensor(np.load(D + "train_lab.npy"))
    xte, yte = prep(np.load(D + "test_img.npy")), np.load(D + "test_lab.npy")
    m = torchvision.models.resnet18(num_classes=4)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    t0 = time.time(); ep = 0
    while time.time() - t0 < budget:
        m.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 32):
            idx = perm[i:i + 32]
            xb = xtr[idx]
            if torch.rand(1) < 0.5: xb = xb.flip(3)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(m(xb), ytr[idx])
            opt.zero_grad(); loss.backward(); opt.step()
            if time.time() - t0 > budget: break
        ep += 1
    m.eval()
    with torch.no_grad():
        p = torch.sigmoid(torch.cat([m(xte[i:i + 64]) for i in range(0, len(xte), 64)])).numpy()
    aucs = [roc_auc_score(yte[:, k], p[:, k]) for k in range(4)]
    print("epochs %d (%.0fs) loss %.3f AUC per finding %s mean %.3f" % (ep, time.time() - t0, loss.item(), np.round(aucs, 3), np.mean(aucs)))
else:
    class UNet(torch.nn.Module):
        def __init__(s):
            super().__init__()
            c = lambda i, o: torch.nn.Sequential(torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.BatchNorm2d(o), torch.nn.ReLU(), torch.nn.Conv2d(o, o, 3, padding=1), torch.nn.BatchNorm2d(o), torch.nn.ReLU())
            s.e1, s.e2, s.e3 = c(3, 16), c(16, 32), c(32, 64)
            s.d2, s.d1 = c(64 + 32, 32), c(32 + 16, 16)
            s.out = torch.nn.Conv2d(16, 1, 1)
        def forward(s, x):
            a = s.e1(x); b = s.e2(torch.nn.functional.max_pool2d(a, 2)); c = s.e3(torch.nn.functional.max_pool2d(b, 2))
            u = s.d2(torch.cat([torch.nn.functional.interpolate(c, scale_factor=2), b], 1))
            u = s.d1(torch.cat([torch.nn.functional.interpolate(u, scale_factor=2), a], 1))
            return s.out(u)
    xtr, ytr = prep(np.load(D + "train_simg.npy")), torch.tensor(np.load(D + "train_msk.npy") / 255., dtype=torch.float32)[:, None]
    xte, yte = prep(np.load(D + "test_simg.npy")), np.load(D + "test_msk.npy") / 255.
    m = UNet(); opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    t0 = time.time(); ep = 0
    while time.time() - t0 < budget:
        m.train(); perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 16):
            idx = perm[i:i + 16]
            p = torch.sigmoid(m(xtr[idx])); y = ytr[idx]
            loss = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
            opt.zero_grad(); loss.backward(); opt.step()
            if time.time() - t0 > budget: break
        ep += 1
    m.eval()
    with torch.no_grad():
        p = torch.sigmoid(torch.cat([m(xte[i:i + 64]) for i in range(0, len(xte), 64)])).numpy()[:, 0]
    pb, yb = p > 0.5, yte > 0.5
    print("epochs %d (%.0fs) dice %.4f" % (ep, time.time() - t0, 2 * (pb & yb).sum() / (pb.sum() + yb.sum())))
