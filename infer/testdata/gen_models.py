#!/usr/bin/python3
"""Writes the small ONNX models infer's Model tests use (Debian's
/usr/bin/python3 with python3-onnx 1.12; IR 8, opset 17 like dira's exports):

  encoder32.onnx  image [N,3,32,32] -> features [N,3]: GlobalAveragePool, Flatten
                  (the per-channel mean, easy to compute by hand)
  unet32.onnx     image [N,3,32,32] -> mask [N,1,32,32]: the mean over channels
  gray32.onnx     image [N,1,32,32] -> features [N,1] (input is not [N,3,H,W])
  anysize.onnx    image [N,3,H,W]   -> features [N,3] (no fixed H and W)
  batch2.onnx     image [2,3,32,32] -> features [2,3]: encoder32 with a fixed
                  batch of 2 (a partial last batch must be padded)
  encoder256.onnx image [N,3,256,256] -> features [N,3]: a batch of 4096
                  of these needs 3 GiB of input (refused at the start)
  huge.onnx       image [N,3,100000,100000] -> features [N,3]: about 200 bytes
                  declaring 10^10 pixels per image (issue 13)

    /usr/bin/python3 infer/testdata/gen_models.py infer/testdata
"""
import os
import sys

import onnx
from onnx import TensorProto, helper


def save(path, nodes, inp, out):
    g = helper.make_graph(nodes, os.path.basename(path), [inp], [out])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="gen_models.py")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


def encoder(path, c, h, w, n="N"):
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, [n, c, h, w])
    out = helper.make_tensor_value_info("features", TensorProto.FLOAT, [n, c])
    save(path, [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
                helper.make_node("Flatten", ["pooled"], ["features"], axis=1)], inp, out)


out = sys.argv[1]
encoder(os.path.join(out, "encoder32.onnx"), 3, 32, 32)
encoder(os.path.join(out, "gray32.onnx"), 1, 32, 32)
encoder(os.path.join(out, "anysize.onnx"), 3, "H", "W")
encoder(os.path.join(out, "batch2.onnx"), 3, 32, 32, n=2)
encoder(os.path.join(out, "encoder256.onnx"), 3, 256, 256)
encoder(os.path.join(out, "huge.onnx"), 3, 100000, 100000)
save(os.path.join(out, "unet32.onnx"),
     [helper.make_node("ReduceMean", ["image"], ["mask"], axes=[1], keepdims=1)],
     helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32]),
     helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, 32, 32]))
