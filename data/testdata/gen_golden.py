#!/usr/bin/python3
"""Regenerates data/testdata/golden/: reference outputs of the torchvision 0.14 /
PIL 9.4 view transforms on two small images, for data/golden_test.go.

Run with Debian's interpreter (it has python3-torch 1.13, python3-torchvision 0.14
and python3-pil 9.4):

    /usr/bin/python3 data/testdata/gen_golden.py

Every case applies fixed parameters (no random draws), so the Go side can run the
same operations and compare. Tolerance in the Go test: 1/255 per sample value.

cases.json also holds the mean and spread of RandomResizedCrop's area fraction
and log aspect ratio over 20000 torchvision draws for three image sizes.

Inputs: in_rgb.png, a 48x40 colour image, and in_gray.png, a 48x40 grayscale one.
As in the official DiRA data loader, the gray input is opened with
.convert('RGB'), so its cases exercise what torchvision does to an RGB image with
three equal channels. Outputs are written as RGB PNGs; cases.json lists, per case,
the input, the ordered operations with their parameters, and the output file.
"""

import json
import math
import os

import numpy as np
from PIL import Image, ImageFilter
import torch
import torchvision
from torchvision import transforms
from torchvision.transforms import functional as F
from torchvision.transforms import InterpolationMode

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden")
W, H = 48, 40


def make_inputs():
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    r = 128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = (x * 5 + y * 3) % 256
    b = np.where(((x // 6) + (y // 5)) % 2 == 0, 230, 25) - 0.5 * x
    rgb = np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)
    # A radiograph-like gray image: smooth body, two dark "lungs", a sharp edge.
    body = 150 + 60 * np.exp(-((x - 24) ** 2) / 300.0)
    lungs = 70 * (np.exp(-(((x - 14) / 6) ** 2 + ((y - 20) / 12) ** 2)) +
                  np.exp(-(((x - 34) / 6) ** 2 + ((y - 20) / 12) ** 2)))
    gray = body - lungs + np.where(y > 33, 50, 0) + ((x * 7 + y * 13) % 11)
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB"), Image.fromarray(gray, "L")


def apply(img, op, args):
    if op == "resized_crop":
        top, left, h, w, out_h, out_w = args
        return F.resized_crop(img, top, left, h, w, [out_h, out_w], InterpolationMode.BILINEAR)
    if op == "brightness":
        return F.adjust_brightness(img, args[0])
    if op == "contrast":
        return F.adjust_contrast(img, args[0])
    if op == "saturation":
        return F.adjust_saturation(img, args[0])
    if op == "hue":
        return F.adjust_hue(img, args[0])
    if op == "blur":
        # DiRA's GaussianBlur (from MoCo v2): PIL's filter with radius = sigma.
        return img.filter(ImageFilter.GaussianBlur(radius=args[0]))
    if op == "hflip":
        return F.hflip(img)
    raise ValueError(op)


CASES = [
    # RandomResizedCrop's resize: downscale, upscale, mixed, and one axis only.
    ("crop_down", [["resized_crop", [0, 0, 40, 48, 24, 24]]]),
    ("crop_down_odd", [["resized_crop", [3, 5, 37, 41, 11, 13]]]),
    ("crop_up", [["resized_crop", [5, 7, 20, 30, 64, 64]]]),
    ("crop_mixed", [["resized_crop", [3, 2, 33, 17, 16, 32]]]),
    ("crop_width_only", [["resized_crop", [0, 4, 40, 40, 40, 20]]]),
    ("crop_tiny", [["resized_crop", [10, 20, 2, 3, 32, 32]]]),
    # ColorJitter(0.4, 0.4, 0.4, 0.1) draws factors in [0.6, 1.4] and hue in
    # [-0.1, 0.1]; the extremes of PIL's blend (inside/outside [0,1]) are covered.
    ("brightness_0.6", [["brightness", [0.6]]]),
    ("brightness_1.37", [["brightness", [1.37]]]),
    ("contrast_0.6", [["contrast", [0.6]]]),
    ("contrast_1.4", [["contrast", [1.4]]]),
    ("saturation_0.63", [["saturation", [0.63]]]),
    ("saturation_1.4", [["saturation", [1.4]]]),
    ("hue_-0.1", [["hue", [-0.1]]]),
    ("hue_0.07", [["hue", [0.07]]]),
    ("hue_0.5", [["hue", [0.5]]]),
    # GaussianBlur radius drawn from U(0.1, 2.0).
    ("blur_0.1", [["blur", [0.1]]]),
    ("blur_0.5", [["blur", [0.5]]]),
    ("blur_1.0", [["blur", [1.0]]]),
    ("blur_1.93", [["blur", [1.93]]]),
    ("hflip", [["hflip", []]]),
    # One full view: crop, jitter in a fixed random order, blur, flip.
    ("view", [["resized_crop", [4, 6, 30, 36, 32, 32]], ["hue", [0.04]], ["contrast", [1.21]],
              ["brightness", [0.83]], ["saturation", [1.12]], ["blur", [1.37]], ["hflip", []]]),
]


CROP_SIZES = [(1024, 1024), (48, 40), (300, 500)]
CROP_DRAWS = 20000


def crop_stats():
    """Moments of torchvision's RandomResizedCrop.get_params(scale=(0.2, 1)) draws,
    which the Go test compares with its own draws (different RNG, same law)."""
    torch.manual_seed(0)
    ratio = (3.0 / 4.0, 4.0 / 3.0)
    stats = {}
    for w, h in CROP_SIZES:
        img = Image.new("L", (w, h))
        area, log_aspect = [], []
        for _ in range(CROP_DRAWS):
            i, j, ch, cw = transforms.RandomResizedCrop.get_params(img, (0.2, 1.0), ratio)
            area.append(cw * ch / (w * h))
            log_aspect.append(math.log(cw / ch))
        stats[f"{w}x{h}"] = {"mean_area": float(np.mean(area)), "std_area": float(np.std(area)),
                             "mean_log_aspect": float(np.mean(log_aspect)), "draws": CROP_DRAWS}
    return stats


def main():
    os.makedirs(OUT, exist_ok=True)
    rgb, gray = make_inputs()
    rgb.save(os.path.join(OUT, "in_rgb.png"))
    gray.save(os.path.join(OUT, "in_gray.png"))
    cases = []
    for inp_name, inp in (("rgb", rgb), ("gray", gray.convert("RGB"))):
        for name, ops in CASES:
            img = inp
            for op, args in ops:
                img = apply(img, op, args)
            assert img.mode == "RGB"
            out = f"{inp_name}_{name}.png"
            img.save(os.path.join(OUT, out))
            cases.append({"name": f"{inp_name}/{name}", "input": f"in_{inp_name}.png", "ops": ops, "output": out})
    head = {"generator": "data/testdata/gen_golden.py", "torchvision": torchvision.__version__,
            "pillow": Image.__version__, "tolerance": "1/255 per sample", "crop_stats": crop_stats()}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        # One case per line keeps diffs of a regenerated golden readable.
        f.write(json.dumps(head)[:-1] + ', "cases": [\n')
        f.write(",\n".join(json.dumps(c) for c in cases))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
