#!/usr/bin/python3
"""Regenerates data/testdata/classify/: torchvision 0.14 / PIL 9.4 outputs of
the classification transforms of the DiRA benchmark code
(BenchmarkTransferLearning Version1, dataloader.py
build_transform_classification), for data/classify_test.go.

Run with Debian's interpreter (python3-torch 1.13, python3-torchvision 0.14,
python3-pil 9.4):

    /usr/bin/python3 data/testdata/gen_classify.py

Inputs are the two images of data/testdata/golden (48x40 RGB and gray; the
gray one is opened with .convert('RGB') as the official datasets do). Every
case applies fixed parameters, so the Go side runs the same operations:

  resize [w, h]          F.resize(img, [h, w])           (Resize((h, w)): squash)
  resize_shorter [s]     F.resize(img, s)                 (Resize(s): shorter side)
  center_crop [h, w]     F.center_crop(img, [h, w])       (pads when larger)
  ten_crop [h, w]        F.ten_crop(img, [h, w])          (ten outputs)
  rotate [deg, interp]   F.rotate(img, deg, NEAREST|BILINEAR, expand=False, fill=0)
  random_rotation [seed] transforms.RandomRotation(7) under torch.manual_seed(seed);
                         the angle it drew is stored in the case ("angle")
  hflip []               F.hflip(img)

Image outputs are RGB PNGs, compared within 1/255 per sample. The "tensor"
cases end with ToTensor + Normalize (imagenet or chestx-ray, the two
normalisations of build_transform_classification) and store the float32
tensor as .npy, compared within 1e-6.
"""

import json
import os

import numpy as np
from PIL import Image
import torch
import torchvision
from torchvision import transforms
from torchvision.transforms import functional as F
from torchvision.transforms import InterpolationMode

HERE = os.path.dirname(os.path.abspath(__file__))
IN = os.path.join(HERE, "golden")
OUT = os.path.join(HERE, "classify")

NORMS = {
    "imagenet": transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "chestx-ray": transforms.Normalize([0.5056, 0.5056, 0.5056], [0.252, 0.252, 0.252]),
}
INTERP = {0: InterpolationMode.NEAREST, 1: InterpolationMode.BILINEAR}


def apply(img, op, args, case):
    if op == "resize":
        return F.resize(img, [args[1], args[0]])
    if op == "resize_shorter":
        return F.resize(img, args[0])
    if op == "center_crop":
        return F.center_crop(img, [args[0], args[1]])
    if op == "ten_crop":
        return list(F.ten_crop(img, [args[0], args[1]]))
    if op == "rotate":
        return F.rotate(img, args[0], INTERP[args[1]], expand=False, fill=0)
    if op == "random_rotation":
        torch.manual_seed(args[0])
        angle = transforms.RandomRotation.get_params([-7.0, 7.0])
        torch.manual_seed(args[0])
        out = transforms.RandomRotation(7)(img)
        case["angle"] = angle
        return out
    if op == "hflip":
        return F.hflip(img)
    raise ValueError(op)


CASES = [
    ("resize_square", [["resize", [36, 36]]]),
    ("resize_up", [["resize", [52, 20]]]),
    ("resize_shorter", [["resize_shorter", [30]]]),
    ("eval_center", [["resize", [36, 36]], ["center_crop", [28, 28]]]),
    ("center_crop_odd", [["center_crop", [27, 31]]]),
    ("center_crop_pad", [["center_crop", [44, 53]]]),
    ("test_ten_crop", [["resize", [36, 36]], ["ten_crop", [28, 28]]]),
    ("ten_crop_odd", [["ten_crop", [25, 33]]]),
    ("rotate_nearest_-7", [["rotate", [-7.0, 0]]]),
    ("rotate_nearest_-3.3", [["rotate", [-3.3, 0]]]),
    ("rotate_nearest_0.5", [["rotate", [0.5, 0]]]),
    ("rotate_nearest_6.99", [["rotate", [6.99, 0]]]),
    ("rotate_nearest_-45", [["rotate", [-45.0, 0]]]),
    ("rotate_nearest_90", [["rotate", [90.0, 0]]]),
    ("rotate_nearest_180", [["rotate", [180.0, 0]]]),
    ("rotate_nearest_0", [["rotate", [0.0, 0]]]),
    ("rotate_bilinear_-7", [["rotate", [-7.0, 1]]]),
    ("rotate_bilinear_2.2", [["rotate", [2.2, 1]]]),
    ("rotate_bilinear_5.5", [["rotate", [5.5, 1]]]),
    ("rotate_bilinear_90", [["rotate", [90.0, 1]]]),
    ("random_rotation_1", [["random_rotation", [1]]]),
    ("random_rotation_7", [["random_rotation", [7]]]),
    ("train_fixed", [["resize", [40, 40]], ["center_crop", [32, 32]], ["hflip", []], ["rotate", [4.25, 0]]]),
]

TENSOR_CASES = [
    ("tensor_eval_imagenet", [["resize", [36, 36]], ["center_crop", [28, 28]]], "imagenet"),
    ("tensor_eval_chestxray", [["resize", [36, 36]], ["center_crop", [28, 28]]], "chestx-ray"),
    ("tensor_ten_crop_imagenet", [["resize", [20, 20]], ["ten_crop", [16, 16]]], "imagenet"),
]


def run(img, ops, case):
    for op, args in ops:
        img = apply(img, op, args, case)
    return img


def main():
    os.makedirs(OUT, exist_ok=True)
    inputs = {
        "rgb": Image.open(os.path.join(IN, "in_rgb.png")).convert("RGB"),
        "gray": Image.open(os.path.join(IN, "in_gray.png")).convert("RGB"),
    }
    cases = []
    for inp_name, inp in inputs.items():
        for name, ops in CASES:
            case = {"name": f"{inp_name}/{name}", "input": f"../golden/in_{inp_name}.png", "ops": ops}
            out = run(inp, ops, case)
            outs = out if isinstance(out, list) else [out]
            case["outputs"] = []
            for k, o in enumerate(outs):
                assert o.mode == "RGB"
                fn = f"{inp_name}_{name}" + (f"_{k}" if len(outs) > 1 else "") + ".png"
                o.save(os.path.join(OUT, fn))
                case["outputs"].append(fn)
            cases.append(case)
        for name, ops, norm in TENSOR_CASES:
            case = {"name": f"{inp_name}/{name}", "input": f"../golden/in_{inp_name}.png", "ops": ops, "normalize": norm}
            out = run(inp, ops, case)
            outs = out if isinstance(out, list) else [out]
            t = torch.stack([NORMS[norm](F.to_tensor(o)) for o in outs])
            fn = f"{inp_name}_{name}.npy"
            np.save(os.path.join(OUT, fn), t.numpy().astype(np.float32))
            case["tensor"] = fn
            cases.append(case)
    head = {"generator": "data/testdata/gen_classify.py", "torchvision": torchvision.__version__,
            "pillow": Image.__version__, "tolerance": "1/255 per sample; tensors 1e-6"}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        f.write(json.dumps(head)[:-1] + ', "cases": [\n')
        f.write(",\n".join(json.dumps(c) for c in cases))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
