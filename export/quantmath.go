package export

import (
	"fmt"
	"math"
)

// The integer formats QuantizeInt8 writes, chosen for ONNX Runtime's CPU
// kernels: activations uint8 with a zero point (asymmetric), weights int8
// with zero point 0 (symmetric, one scale per output channel), biases int32.
// uint8 x int8 is the pair x86's VNNI instruction (vpdpbusd) multiplies
// directly, and the pair ONNX Runtime's QDQ selectors turn into QLinearConv
// on the CPU without extra flags (int8 activations need int8 weights and an
// allow-int8 switch there).
const (
	actQMin, actQMax = 0, 255    // uint8 activations
	wQMax            = 127       // int8 weights use [-127, 127]: symmetric, as ONNX Runtime's quantizer
	biasQMax         = 1<<31 - 1 // int32 biases
)

// qparams is one per-tensor affine quantization of an activation:
// q = saturate(round_half_even(x/Scale) + ZeroPoint) into [0, 255], and back
// x ≈ (q - ZeroPoint)·Scale, as ONNX's QuantizeLinear/DequantizeLinear.
type qparams struct {
	Scale     float32
	ZeroPoint uint8
}

// activationParams returns the uint8 parameters for values calibrated to
// [rmin, rmax]. The range is first widened to contain 0, so that 0 (ReLU's
// floor, zero padding) is represented exactly by the zero point:
//
//	rmin' = min(rmin, 0), rmax' = max(rmax, 0)
//	scale = (rmax' - rmin') / 255          (in float64, rounded once to float32)
//	zp    = clamp(round_half_even(0 - rmin'/scale), 0, 255)   (float32 arithmetic)
//
// A degenerate range (all zeros) gets scale 1, zero point 0, as ONNX
// Runtime's quantizer does. For rmin >= 0 (a ReLU output) the zero point is
// 0, so quantization itself clips negatives: QuantizeInt8 relies on that to
// drop the ReLU after a quantized Conv or Add.
func activationParams(rmin, rmax float32) qparams {
	lo := math.Min(float64(rmin), 0)
	hi := math.Max(float64(rmax), 0)
	scale := float32((hi - lo) / float64(actQMax-actQMin))
	if !(scale >= math.SmallestNonzeroFloat32) || math.IsInf(float64(scale), 0) {
		return qparams{Scale: 1, ZeroPoint: 0}
	}
	zp := roundHalfEven(float32(actQMin) - float32(lo)/scale)
	return qparams{Scale: scale, ZeroPoint: uint8(clamp(zp, actQMin, actQMax))}
}

// quantize applies QuantizeLinear to one value.
func (p qparams) quantize(x float32) uint8 {
	return uint8(clamp(roundHalfEven(x/p.Scale)+float64(p.ZeroPoint), actQMin, actQMax))
}

// dequantize applies DequantizeLinear to one value.
func (p qparams) dequantize(q uint8) float32 {
	return float32(int32(q)-int32(p.ZeroPoint)) * p.Scale
}

// roundHalfEven rounds x (a float32 quotient, as ONNX Runtime computes
// x/scale in float32) to the nearest integer, ties to even: ONNX's
// QuantizeLinear and numpy.round.
func roundHalfEven(x float32) float64 { return math.RoundToEven(float64(x)) }

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// quantizeWeights quantizes a convolution weight [out, ...] (C order) per
// output channel, symmetrically into int8:
//
//	scale_c = max|w_c| / 127   (float64, rounded once to float32; 1 for an all-zero channel)
//	q       = clamp(round_half_even(w / scale_c), -127, 127)   (w / scale_c in float32)
//
// so that DequantizeLinear(q, scale, 0, axis=0) gives back w to within
// scale_c/2 per element.
func quantizeWeights(w []float32, out int) (q []int8, scales []float32, err error) {
	if out <= 0 || len(w)%out != 0 {
		return nil, nil, fmt.Errorf("%d weights do not split into %d output channels", len(w), out)
	}
	per := len(w) / out
	q = make([]int8, len(w))
	scales = make([]float32, out)
	for c := range out {
		ch := w[c*per : (c+1)*per]
		var absmax float64
		for _, v := range ch {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, nil, fmt.Errorf("output channel %d has a non-finite weight %v", c, v)
			}
			absmax = math.Max(absmax, math.Abs(float64(v)))
		}
		s := float32(absmax / wQMax)
		if !(s >= math.SmallestNonzeroFloat32) {
			s = 1
		}
		scales[c] = s
		for i, v := range ch {
			q[c*per+i] = int8(clamp(roundHalfEven(v/s), -wQMax, wQMax))
		}
	}
	return q, scales, nil
}

// quantizeBias quantizes a convolution bias to int32 with the scale ONNX
// Runtime's QLinearConv assumes for it, input scale x weight scale per
// channel (float32 product): q_c = round_half_even(b_c / (xScale·wScale_c)).
// When a bias does not fit in int32 at that scale (a tiny input or weight
// scale against a large bias), the channel's weight scale is raised just
// enough, and the caller requantizes that channel's weights with it: the
// returned wScales are the ones to use.
func quantizeBias(b []float32, xScale float32, wScales []float32) (q []int32, newWScales []float32, raised []int) {
	q = make([]int32, len(b))
	newWScales = append([]float32(nil), wScales...)
	for c, v := range b {
		s := xScale * newWScales[c]
		r := math.RoundToEven(float64(v) / float64(s))
		if math.Abs(r) > biasQMax {
			// |b| / (xScale·ws) <= 2^31-1  <=>  ws >= |b| / (xScale·(2^31-1)).
			newWScales[c] = float32(math.Abs(float64(v)) / (float64(xScale) * (biasQMax - 1024)))
			raised = append(raised, c)
			s = xScale * newWScales[c]
			r = math.RoundToEven(float64(v) / float64(s))
		}
		q[c] = int32(clamp(r, -biasQMax, biasQMax))
	}
	return q, newWScales, raised
}

// requantizeChannel quantizes output channel c of w again with scale s
// (after quantizeBias raised it).
func requantizeChannel(q []int8, w []float32, out, c int, s float32) {
	per := len(w) / out
	for i := c * per; i < (c+1)*per; i++ {
		q[i] = int8(clamp(roundHalfEven(w[i]/s), -wQMax, wQMax))
	}
}
