#!/usr/bin/python3
"""Reference for data/bench: the official DiRA data pipeline in PyTorch.

A torch.utils.data.DataLoader over a folder of PNGs, each image opened as
PIL.Image.open(path).convert('RGB') and turned into [view1, view2, target] by the
official DiRA transform (dira-spec.md 3.1, 3.2): two RandomResizedCrop(224,
scale=(0.2, 1)), each jittered (ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8), blurred
(PIL GaussianBlur, sigma ~ U(0.1, 2), p=0.5), flipped (p=0.5), distorted by
Custom_Distoration and ToTensor'ed; the target is the gray clean crop of view 1.
Batches are collated by the DataLoader (shuffle, drop_last), as in training.

Run with Debian's interpreter (torch 1.13, torchvision 0.14, Pillow 9.4):

    /usr/bin/python3 data/bench/torch_loader.py --images DIR --workers 2 [--batch 25] [--epochs 3]
    /usr/bin/python3 data/bench/torch_loader.py --reencode DIR   # re-save DIR/*.png with PIL

It times --epochs epochs after one warm-up epoch (worker start-up excluded:
persistent workers) and prints one line: "torch workers=W images/s=X".
"""

import argparse
import copy
import glob
import os
import random
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class GaussianBlur:
    """MoCo v2's blur, as used by DiRA: PIL GaussianBlur with radius ~ U(sigma)."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, x):
        return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.sigma[0], self.sigma[1])))


def custom_distortion(img, rows=224, cols=224):
    """DiRA's Custom_Distoration (spec 3.2) on a PIL image, returning a PIL image."""
    a = np.array(img)
    r = random.random()
    if r <= 0.3:  # in-painting
        for _ in range(10):
            bx, by = random.randint(10, 70), random.randint(10, 70)
            x, y = random.randint(3, rows - bx - 3), random.randint(3, cols - by - 3)
            a[x:x + bx, y:y + by, :] = 0
            if random.random() < 0.1:
                break
    elif r <= 0.35:  # out-painting
        tmp = copy.deepcopy(a)
        a[:] = 0
        for _ in range(10):
            bx, by = rows - random.randint(50, 70), cols - random.randint(50, 70)
            x, y = random.randint(3, rows - bx - 3), random.randint(3, cols - by - 3)
            a[x:x + bx, y:y + by] = tmp[x:x + bx, y:y + by]
            if random.random() < 0.1:
                break
    elif r <= 0.65:  # patch swapping; the y comparisons are the official "<"
        tmp = copy.deepcopy(a)
        for _ in range(10):
            bx, by = random.randint(10, 15), random.randint(10, 15)
            x1, y1 = random.randint(3, rows - bx - 3), random.randint(3, cols - by - 3)
            x2, y2 = random.randint(3, rows - bx - 3), random.randint(3, cols - by - 3)
            if x1 > x2 + bx or x2 > x1 + bx or y1 < y2 + by or y2 < y1 + by:
                a[x1:x1 + bx, y1:y1 + by] = tmp[x2:x2 + bx, y2:y2 + by]
                a[x2:x2 + bx, y2:y2 + by] = tmp[x1:x1 + bx, y1:y1 + by]
    return Image.fromarray(a)


class Transform:
    """The official DiRA view builder for modes dir/dira."""

    def __init__(self, size=224):
        self.crop = transforms.RandomResizedCrop(size, scale=(0.2, 1.0))
        self.aug = transforms.Compose([
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            transforms.RandomApply([GaussianBlur([0.1, 2.0])], p=0.5),
            transforms.RandomHorizontalFlip(),
        ])
        self.to_tensor = transforms.ToTensor()
        self.size = size

    def __call__(self, img):
        y1_orig, y2_orig = self.crop(img), self.crop(img)
        y1 = self.to_tensor(custom_distortion(self.aug(y1_orig), self.size, self.size))
        y2 = self.to_tensor(custom_distortion(self.aug(y2_orig), self.size, self.size))
        target = torch.from_numpy(np.array(y1_orig.convert("L"), dtype=np.float32) / 255.0).unsqueeze(0)
        return y1, y2, target


class Folder(Dataset):
    def __init__(self, root):
        self.files = sorted(glob.glob(os.path.join(root, "*.png")))
        if not self.files:
            sys.exit(f"torch_loader: no .png files in {root}")
        self.transform = Transform()

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return self.transform(Image.open(self.files[i]).convert("RGB"))


def reencode(root):
    files = sorted(glob.glob(os.path.join(root, "*.png")))
    for f in files:
        Image.open(f).save(f)  # Pillow defaults: zlib level 6, adaptive row filters
    print(f"torch_loader: re-encoded {len(files)} images in {root} with Pillow {Image.__version__}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", help="folder of PNG images")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    p.add_argument("--batch", type=int, default=25)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--reencode", metavar="DIR", help="re-save DIR/*.png with PIL and exit")
    a = p.parse_args()
    if a.reencode:
        reencode(a.reencode)
        return
    torch.set_num_threads(1)
    ds = Folder(a.images)
    dl = DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, drop_last=True,
                    persistent_workers=a.workers > 0)
    for _ in dl:  # warm-up epoch: starts the workers, fills the page cache
        pass
    n = 0
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        for q, k, t in dl:
            n += q.shape[0]
    dt = time.perf_counter() - t0
    print(f"torch workers={a.workers} images/s={n / dt:.1f}")


if __name__ == "__main__":
    main()
