#!/usr/bin/python3
"""PyTorch side of bench/infer (run by it; Debian python3-torch 1.13).

    torch_bench.py UNET_PTH INPUT_NPY OUT_JSON THREADS ITERS1 ITERS16

Loads the reference U-Net (model/testdata/reference.py, smp 0.1.3's Unet
with a ResNet-50 encoder) from UNET_PTH (written by dira's export.WritePTH),
and times in eval mode under no_grad, eager: the encoder (pooled features,
what encoder.onnx computes) and the whole U-Net (sigmoid mask), at batch 1
and 16: one untimed warm-up call, then ITERS timed calls. Writes per-call
seconds to OUT_JSON and each output (of the warm-up call) to
torch_<model>_<batch>.npy next to it.
"""
import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("reference", os.path.join(here, "..", "..", "model", "testdata", "reference.py"))
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)


def main():
    pth, inp, out = sys.argv[1], sys.argv[2], sys.argv[3]
    threads, iters1, iters16 = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    torch.set_num_threads(threads)
    unet = ref.Unet("resnet50")
    unet.load_state_dict(torch.load(pth), strict=True)
    unet.eval()
    x = torch.from_numpy(np.load(inp))
    models = {
        "encoder": lambda b: torch.flatten(F.adaptive_avg_pool2d(unet.encoder(b)[-1], 1), 1),
        "unet": unet,
    }
    results = []
    with torch.no_grad():
        for name, fn in models.items():
            for batch, iters in ((1, iters1), (16, iters16)):
                xb = x[:batch].contiguous()
                y = fn(xb)
                np.save(os.path.join(os.path.dirname(out), "torch_%s_%d.npy" % (name, batch)), y.numpy())
                secs = []
                for _ in range(iters):
                    t = time.perf_counter()
                    fn(xb)
                    secs.append(time.perf_counter() - t)
                print("pytorch %s batch %d: p50 %.1f ms" % (name, batch, 1000 * sorted(secs)[(len(secs) - 1) // 2]), file=sys.stderr)
                results.append({"model": name, "batch": batch, "seconds": secs})
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
