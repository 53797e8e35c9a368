#!/usr/bin/python3
"""torch.save files for package torchsave's tests, written by PyTorch itself
(Debian python3-torch 1.13: run with /usr/bin/python3).

    gen_fixtures.py OUTDIR

Writes, from one object (a dict holding an OrderedDict state_dict with
tensors of every storage type, views with offsets and strides, a shared
storage, 0-d and empty tensors, and an optimizer-like nested dict):

  zip.pth       torch.save's zip layout (stored records)
  deflated.pth  the same archive with every record deflated (zipfile),
                which torch.load reads too
  legacy.pth    _use_new_zipfile_serialization=False
  expected.txt  per state_dict entry: name, dtype, shape, then the values
                of .contiguous() as float64, one line per tensor

and checks that torch.load reads deflated.pth back equal to the object.
"""
import collections
import os
import sys
import zipfile

import torch

out = sys.argv[1]
g = torch.Generator().manual_seed(7)
base = torch.randn(4, 6, generator=g)
shared = torch.arange(10, dtype=torch.float32)
sd = collections.OrderedDict()
sd["f32"] = torch.randn(2, 3, generator=g)
sd["f64"] = torch.randn(3, dtype=torch.float64, generator=g)
sd["f16"] = torch.tensor([0.5, -2.0, 65504.0, 6e-8, float("inf")], dtype=torch.float16)
sd["bf16"] = torch.tensor([1.5, -3.25, 1e30], dtype=torch.bfloat16)
sd["i64"] = torch.tensor([-(2**40), 0, 7], dtype=torch.int64)
sd["i32"] = torch.tensor([-5, 2**31 - 1], dtype=torch.int32)
sd["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
sd["i8"] = torch.tensor([-128, 127], dtype=torch.int8)
sd["u8"] = torch.tensor([0, 255], dtype=torch.uint8)
sd["bool"] = torch.tensor([True, False, True])
sd["scalar"] = torch.tensor(3.5)
sd["num_batches_tracked"] = torch.tensor(12)
sd["empty"] = torch.zeros(0, 3)
sd["transposed"] = base.t()  # stride (1, 6)
sd["row_slice"] = base[1:3]  # offset 6
sd["column"] = base[:, 2]  # offset 2, stride 6
sd["shared_a"] = shared[2:5]
sd["shared_b"] = shared[5:]
sd["param"] = torch.nn.Parameter(torch.randn(3, 2, generator=g))
obj = {
    "epoch": 3,
    "arch": "resnet18",
    "state_dict": sd,
    "optimizer": {"state": {0: {"momentum_buffer": torch.ones(2)}}, "param_groups": [{"lr": 0.1, "params": [0]}]},
    "best_loss": 1.25,
}
zp = os.path.join(out, "zip.pth")
torch.save(obj, zp)
torch.save(obj, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)

dp = os.path.join(out, "deflated.pth")
with zipfile.ZipFile(zp) as src, zipfile.ZipFile(dp, "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))
back = torch.load(dp)
for k, v in sd.items():
    assert torch.equal(back["state_dict"][k], v), k

with open(os.path.join(out, "expected.txt"), "w") as f:
    for k, v in sd.items():
        vals = v.detach().contiguous().reshape(-1).double().tolist()
        f.write("%s %s %s %s\n" % (k, str(v.dtype).replace("torch.", ""),
                                   ",".join(str(d) for d in v.shape) or "-",
                                   " ".join(repr(x) for x in vals)))
