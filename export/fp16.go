package export

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"dira/export/onnxpb"
)

// float32Inputs lists, per op type, the inputs ONNX requires to stay
// float32 whatever the data type: Resize's roi and scales.
var float32Inputs = map[string][]int{"Resize": {1, 2}}

// ToFP16 returns a half-precision copy of the float model m for GPU
// inference: every float32 initializer becomes float16 (except the ones ONNX
// types as float32 whatever the data, Resize's roi and scales), and the
// graph computes in float16 between two Casts: float32 input -> float16
// after each graph input, float16 -> float32 before each graph output. The
// file keeps m's input and output names and float32 types, so `dira infer`
// runs it unchanged. On an x86 CPU, ONNX Runtime has no float16
// convolution and runs the graph in float32 with the float16-rounded
// weights (see FP16Tolerance); the speed and the float16 arithmetic are a
// GPU's.
//
// A weight beyond float16's range (|w| > 65504) is an error naming it; m is
// not changed.
func ToFP16(m *onnxpb.ModelProto) (*onnxpb.ModelProto, error) {
	q := proto.Clone(m).(*onnxpb.ModelProto)
	g := q.GetGraph()
	name := g.GetName()
	keep := map[string]bool{}
	for _, n := range g.GetNode() {
		switch n.GetOpType() {
		case "QuantizeLinear", "DequantizeLinear", "Cast":
			return nil, fmt.Errorf("export: fp16 %s: node %s is %s; convert the float32 model", name, n.GetName(), n.GetOpType())
		}
		for _, i := range float32Inputs[n.GetOpType()] {
			if i < len(n.GetInput()) && n.GetInput()[i] != "" {
				keep[n.GetInput()[i]] = true
			}
		}
	}
	for _, t := range g.GetInitializer() {
		if keep[t.GetName()] || t.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
			continue
		}
		if err := tensorToFP16(t); err != nil {
			return nil, fmt.Errorf("export: fp16 %s: initializer %s: %w", name, t.GetName(), err)
		}
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Constant" {
			continue
		}
		for _, a := range n.GetAttribute() {
			if t := a.GetT(); t != nil && t.GetDataType() == int32(onnxpb.TensorProto_FLOAT) {
				if err := tensorToFP16(t); err != nil {
					return nil, fmt.Errorf("export: fp16 %s: constant %s: %w", name, n.GetName(), err)
				}
			}
		}
	}
	for _, vi := range g.GetValueInfo() {
		if tt := vi.GetType().GetTensorType(); tt.GetElemType() == int32(onnxpb.TensorProto_FLOAT) {
			tt.ElemType = proto.Int32(int32(onnxpb.TensorProto_FLOAT16))
		}
	}

	rename := func(from, to string) {
		for _, n := range g.GetNode() {
			for i, in := range n.GetInput() {
				if in == from {
					n.Input[i] = to
				}
			}
		}
	}
	isFloat := func(vi *onnxpb.ValueInfoProto) bool {
		return vi.GetType().GetTensorType().GetElemType() == int32(onnxpb.TensorProto_FLOAT)
	}
	var head, tail []*onnxpb.NodeProto
	for _, in := range graphInputs(g) {
		if !isFloat(in) {
			continue
		}
		half := in.GetName() + "_fp16"
		rename(in.GetName(), half)
		head = append(head, castNode(in.GetName()+"_to_fp16", in.GetName(), half, onnxpb.TensorProto_FLOAT16))
	}
	for _, out := range g.GetOutput() {
		if !isFloat(out) {
			continue
		}
		half := out.GetName() + "_fp16"
		found := false
		for _, n := range g.GetNode() {
			for i, o := range n.GetOutput() {
				if o == out.GetName() {
					n.Output[i], found = half, true
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("export: fp16 %s: graph output %s is not produced by a node", name, out.GetName())
		}
		rename(out.GetName(), half)
		tail = append(tail, castNode(out.GetName()+"_to_fp32", half, out.GetName(), onnxpb.TensorProto_FLOAT))
	}
	if len(head) == 0 {
		return nil, errors.New("export: fp16 " + name + ": no float32 graph input")
	}
	g.Node = append(append(head, g.GetNode()...), tail...)
	setMetadata(q, "precision", "fp16")
	return q, nil
}

func castNode(name, in, out string, to onnxpb.TensorProto_DataType) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{
		OpType: proto.String("Cast"), Name: proto.String(name),
		Input: []string{in}, Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{attrInt("to", int64(to))},
	}
}

// tensorToFP16 rewrites a float32 tensor as float16 raw data.
func tensorToFP16(t *onnxpb.TensorProto) error {
	v, err := floatValues(t)
	if err != nil {
		return err
	}
	raw := make([]byte, 2*len(v))
	for i, x := range v {
		h := float16Bits(x)
		if h&0x7c00 == 0x7c00 && !math.IsInf(float64(x), 0) && x == x {
			return fmt.Errorf("value %g at %d is beyond float16's range (±65504)", x, i)
		}
		raw[2*i], raw[2*i+1] = byte(h), byte(h>>8)
	}
	t.DataType = proto.Int32(int32(onnxpb.TensorProto_FLOAT16))
	t.FloatData = nil
	t.RawData = raw
	return nil
}

// float16Bits converts f to IEEE 754 binary16, rounding to nearest with ties
// to even (as numpy's astype(float16)), with subnormals; values past
// 65504 (after rounding) become infinity.
func float16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 // quiet NaN
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // float16's biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal (or zero) in float16: shift the significand, implicit
		// bit included, to 10 bits at exponent -14.
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		r := m >> shift
		rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // a carry into the exponent is still the right value (up to infinity)
	}
	return sign | uint16(r)
}

// float16Value converts binary16 bits to float32 (exactly).
func float16Value(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return sign * float32(math.Ldexp(m, -24))
	case 0x1f:
		if m != 0 {
			return float32(math.NaN())
		}
		return sign * float32(math.Inf(1))
	}
	return sign * float32(math.Ldexp(1024+m, e-25))
}
