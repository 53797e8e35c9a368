#!/usr/bin/python3
"""numpy reference for package export's quantization and float16 tests
(Debian's numpy; run with /usr/bin/python3). Reads one JSON object on stdin,
prints one JSON object on stdout.

  qparams   {"ranges": [[rmin, rmax], ...], "x": [...]}
      uint8 activation parameters for each range, as ONNX Runtime's
      quantizer computes them (range widened to contain 0, scale =
      (rmax-rmin)/255, zero point = round(0 - rmin/scale) in float32, ties to
      even), and QuantizeLinear of x with each: clip(round(x/scale) + zp,
      0, 255) with x/scale in float32.
  weights   {"w": [...], "out": C}
      per-output-channel symmetric int8 weights: scale = max|w_c|/127 (1 for
      an all-zero channel), q = clip(round(w/scale), -127, 127) with w/scale
      in float32.
  fp16      {"x": [...]}
      the IEEE binary16 bit patterns of numpy's float32 -> float16 cast.

np.round rounds half to even, as ONNX's QuantizeLinear does.
"""
import json
import sys

import numpy as np


def qparams(req):
    out = {"scale": [], "zero_point": [], "q": []}
    x = np.asarray(req["x"], dtype=np.float32)
    for rmin, rmax in req["ranges"]:
        lo = min(float(np.float32(rmin)), 0.0)
        hi = max(float(np.float32(rmax)), 0.0)
        scale = np.float32((hi - lo) / 255.0)
        if scale < np.finfo(np.float32).tiny:
            scale, zp = np.float32(1), 0
        else:
            zp = int(np.clip(np.round(np.float32(0) - np.float32(lo) / scale), 0, 255))
        q = np.clip(np.round(x / scale) + zp, 0, 255).astype(np.uint8)
        out["scale"].append(float(scale))
        out["zero_point"].append(zp)
        out["q"].append(q.tolist())
    return out


def weights(req):
    c = int(req["out"])
    w = np.asarray(req["w"], dtype=np.float32).reshape(c, -1)
    absmax = np.abs(w).max(axis=1).astype(np.float64)
    scale = (absmax / 127.0).astype(np.float32)
    scale[scale < np.finfo(np.float32).tiny] = 1
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return {"scale": scale.tolist(), "q": q.flatten().tolist()}


def fp16(req):
    x = np.asarray(req["x"], dtype=np.float32)
    return {"bits": x.astype(np.float16).view(np.uint16).tolist()}


def main():
    req = json.load(sys.stdin)
    out = {"qparams": qparams, "weights": weights, "fp16": fp16}[sys.argv[1]](req)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
