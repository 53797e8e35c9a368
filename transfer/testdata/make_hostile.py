#!/usr/bin/python3
"""Hostile torch.save files for package transfer's tests (issue 13): small on
disk, declaring sizes that would cost tens of gigabytes if trusted. Written
with Python's own pickler and zipfile in torch.save's zip layout (run with
/usr/bin/python3; needs python3-torch only for the names it pickles).

    make_hostile.py OUTDIR

  storage_1e10.pth  encoder.conv1.weight [64,3,7,7] viewing a storage whose
                    persistent id declares 10^10 float32 elements (40 GB);
                    its record holds 4 bytes
  stride0.pth       encoder.conv1.weight of shape [100000,100000] with
                    stride (0,0) over a one-element storage (a 40 GB copy)
"""
import collections
import io
import pickle
import sys
import zipfile

import torch


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class View:
    """Pickles as torch.save pickles a tensor: _rebuild_tensor_v2 of a
    storage, an offset, a size and a stride."""

    def __init__(self, storage, size, stride):
        self.storage, self.size, self.stride = storage, size, stride

    def __reduce_ex__(self, proto):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, self.size, self.stride, False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def write(path, state_dict, records):
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(collections.OrderedDict(state_dict))
    with zipfile.ZipFile(path, "w") as z:  # stored, as torch.save writes
        z.writestr("archive/data.pkl", buf.getvalue())
        for key, data in records.items():
            z.writestr("archive/data/" + key, data)
        z.writestr("archive/version", "3\n")


out = sys.argv[1]
write(out + "/storage_1e10.pth",
      {"encoder.conv1.weight": View(Storage("0", 10**10), (64, 3, 7, 7), (147, 49, 7, 1))},
      {"0": bytes(4)})
write(out + "/stride0.pth",
      {"encoder.conv1.weight": View(Storage("0", 1), (100000, 100000), (0, 0))},
      {"0": bytes(4)})
