#!/usr/bin/python3
"""Python side of package export's tests (Debian python3-torch 1.13,
python3-torchvision 0.14, python3-onnx 1.12; run with /usr/bin/python3).
Each mode prints one JSON object on stdout.

  onnx FILE...
      onnx.checker.check_model(full_check=True) on each file; report IR
      version, opsets, inputs/outputs with their dims and element types
      (TensorProto.DataType numbers), metadata, op types.
  load PTH
      torch.load(PTH); report every entry's name, dtype, shape and values.
  snippets ARCH DEC_CHANNELS CLASSES ACTIVATION ENCODER_PTH UNET_PTH INPUT_NPY OUTDIR
      The DiRA README's two loading snippets, unchanged, on the exported files:
      classification: encoder.pth -> torchvision.models.<ARCH>(num_classes=5),
      strict=False; report missing/unexpected keys; fc = Identity, eval, run
      INPUT_NPY -> OUTDIR/features.npy.
      segmentation: unet.pth -> an smp-named Unet (model/testdata/reference.py),
      strict=False after the snippet's stripping; report missing/unexpected keys.
      Then unet.pth loaded strict=True (head included), eval, run INPUT_NPY ->
      OUTDIR/mask.npy.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

torch.set_num_threads(2)


def onnx_mode(paths):
    import onnx
    out = {}
    for p in paths:
        m = onnx.load(p)
        onnx.checker.check_model(m, full_check=True)

        def dims(v):
            return [d.dim_param if d.dim_param else d.dim_value for d in v.type.tensor_type.shape.dim]
        out[os.path.basename(p)] = {
            "ir_version": m.ir_version,
            "opsets": {o.domain: o.version for o in m.opset_import},
            "inputs": {v.name: dims(v) for v in m.graph.input},
            "outputs": {v.name: dims(v) for v in m.graph.output},
            "types": {v.name: v.type.tensor_type.elem_type for v in list(m.graph.input) + list(m.graph.output)},
            "metadata": {kv.key: kv.value for kv in m.metadata_props},
            "ops": sorted({n.op_type for n in m.graph.node}),
        }
    return out


def load_mode(path):
    sd = torch.load(path, map_location="cpu")
    return {
        "type": type(sd).__module__ + "." + type(sd).__name__,
        "entries": [
            {"name": k, "dtype": str(v.dtype), "shape": list(v.shape), "values": v.flatten().tolist()}
            for k, v in sd.items()
        ],
    }


def readme_classification(path, arch):
    # DiRA README, "classification" snippet, verbatim apart from the arch.
    model = getattr(torchvision.models, arch)(num_classes=5)
    state_dict = torch.load(path, map_location="cpu")
    if "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    state_dict = {k.replace("module.", ""): v for k, v in state_dict.items()}
    state_dict = {k.replace("backbone.", ""): v for k, v in state_dict.items()}
    state_dict = {k.replace("encoder.", ""): v for k, v in state_dict.items()}
    for k in list(state_dict.keys()):
        if k.startswith('fc') or k.startswith('segmentation_head') or k.startswith('decoder'):
            del state_dict[k]
    msg = model.load_state_dict(state_dict, strict=False)
    return model, msg


def readme_segmentation(path, model):
    # DiRA README, "segmentation" snippet.
    state_dict = torch.load(path, map_location="cpu")
    if "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    state_dict = {k.replace("module.", ""): v for k, v in state_dict.items()}
    state_dict = {k.replace("backbone.", ""): v for k, v in state_dict.items()}
    for k in list(state_dict.keys()):
        if k.startswith('fc') or k.startswith('segmentation_head'):
            del state_dict[k]
    return model.load_state_dict(state_dict, strict=False)


def snippets_mode(arch, dec, classes, activation, enc_pth, unet_pth, input_npy, outdir):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "model", "testdata"))
    from reference import Unet

    x = torch.from_numpy(np.load(input_npy))
    res = {}

    clf, msg = readme_classification(enc_pth, arch)
    res["classification_missing"] = sorted(msg.missing_keys)
    res["classification_unexpected"] = sorted(msg.unexpected_keys)
    clf.fc = nn.Identity()
    clf.eval()
    with torch.no_grad():
        np.save(os.path.join(outdir, "features.npy"), clf(x).numpy())

    dec = tuple(int(c) for c in dec.split(","))
    unet = Unet(arch, dec, int(classes))
    if activation == "identity":
        unet.segmentation_head[2] = nn.Identity()
    msg = readme_segmentation(unet_pth, unet)
    res["segmentation_missing"] = sorted(msg.missing_keys)
    res["segmentation_unexpected"] = sorted(msg.unexpected_keys)

    full = Unet(arch, dec, int(classes))
    if activation == "identity":
        full.segmentation_head[2] = nn.Identity()
    full.load_state_dict(torch.load(unet_pth, map_location="cpu"), strict=True)
    full.eval()
    with torch.no_grad():
        np.save(os.path.join(outdir, "mask.npy"), full(x).numpy())
    return res


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "onnx":
        out = onnx_mode(args)
    elif mode == "load":
        out = load_mode(args[0])
    elif mode == "snippets":
        out = snippets_mode(*args)
    else:
        sys.exit("unknown mode " + mode)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
