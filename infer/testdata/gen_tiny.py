#!/usr/bin/python3
"""Writes tiny.onnx for infer's Session tests (run with Debian's /usr/bin/python3,
python3-onnx 1.12): input x float32 [N,3] (dynamic batch), outputs
relu = Relu(x) and double = x + x. IR 8, opset 17, like dira's exports.

    /usr/bin/python3 infer/testdata/gen_tiny.py infer/testdata/tiny.onnx
"""
import sys

import onnx
from onnx import TensorProto, helper

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
relu = helper.make_tensor_value_info("relu", TensorProto.FLOAT, ["N", 3])
double = helper.make_tensor_value_info("double", TensorProto.FLOAT, ["N", 3])
g = helper.make_graph(
    [helper.make_node("Relu", ["x"], ["relu"]), helper.make_node("Add", ["x", "x"], ["double"])],
    "tiny", [x], [relu, double])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="gen_tiny.py")
m.ir_version = 8
onnx.checker.check_model(m, full_check=True)
onnx.save(m, sys.argv[1])
