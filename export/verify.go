package export

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/sugarme/gotch/ts"

	"dira/infer"
	"dira/internal/torch"
	"dira/model"
)

// Tolerance is the largest max-abs difference between ONNX Runtime and the Go
// forward that an export accepts (issue 6).
const Tolerance = 1e-4

// Kind names one of the two ONNX artifacts.
type Kind string

const (
	KindEncoder Kind = "encoder" // image -> features
	KindUNet    Kind = "unet"    // image -> mask
)

// Check is what Verify measured on one ONNX file.
type Check struct {
	File       string  `json:"file"`
	Output     string  `json:"output"`
	Shape      []int64 `json:"shape"`
	MaxAbsDiff float64 `json:"max_abs_diff"`   // max |ORT - Go|; +Inf when either side has NaN (null in JSON)
	MaxAbs     float64 `json:"max_abs_output"` // max |Go output|, the scale MaxAbsDiff is measured against (null in JSON if not finite)
	// Runtime and Go are the two outputs compared.
	Runtime infer.Tensor `json:"-"`
	Go      infer.Tensor `json:"-"`
}

// MarshalJSON writes a non-finite MaxAbsDiff or MaxAbs (an output with NaN
// or infinite values) as null: JSON has no such numbers, and
// encoding/json would refuse the whole report.
func (c Check) MarshalJSON() ([]byte, error) {
	type plain Check // without this method
	finite := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	return json.Marshal(struct {
		plain
		MaxAbsDiff *float64 `json:"max_abs_diff"`
		MaxAbs     *float64 `json:"max_abs_output"`
	}{plain(c), finite(c.MaxAbsDiff), finite(c.MaxAbs)})
}

// RandomInput is a batch of n images [n,3,h,w] with values uniform in [0,1),
// the input range the models take, drawn from seed.
func RandomInput(n, h, w int, seed uint64) infer.Tensor {
	r := rand.New(rand.NewPCG(seed, 0x6578706f7274)) // "export"
	x := infer.Tensor{Shape: []int64{int64(n), 3, int64(h), int64(w)}, Data: make([]float32, n*3*h*w)}
	for i := range x.Data {
		x.Data[i] = r.Float32()
	}
	return x
}

// Verify runs the ONNX file at path in ONNX Runtime and u's Go forward in
// eval mode (u.Features for KindEncoder, u.Forward for KindUNet) on the same
// input x and returns the largest absolute difference. The export stage
// fails when it exceeds Tolerance.
//
// ONNX Runtime must be started (infer.Start), and the calling goroutine must
// be locked to its OS thread, as every gotch caller.
func Verify(path string, u *model.UNet, kind Kind, x infer.Tensor, opts infer.SessionOptions) (Check, error) {
	out := map[Kind]string{KindEncoder: FeaturesName, KindUNet: MaskName}[kind]
	if out == "" {
		return Check{}, fmt.Errorf("export: verify %s: unknown model kind %q", path, kind)
	}
	return verify(path, out, x, opts, func() (infer.Tensor, error) { return goForward(u, kind, x) })
}

// verify runs the model at path in ONNX Runtime on x and compares its output
// named out with what forward computes in Go.
func verify(path, out string, x infer.Tensor, opts infer.SessionOptions, forward func() (infer.Tensor, error)) (Check, error) {
	s, err := infer.NewSession(path, opts)
	if err != nil {
		return Check{}, fmt.Errorf("export: verify: %w", err)
	}
	defer s.Close()
	res, err := s.Run(map[string]infer.Tensor{InputName: x})
	if err != nil {
		return Check{}, fmt.Errorf("export: verify: %w", err)
	}
	rt, ok := res[out]
	if !ok {
		return Check{}, fmt.Errorf("export: verify %s: no output %q (outputs %v)", path, out, s.OutputNames())
	}
	g, err := forward()
	if err != nil {
		return Check{}, fmt.Errorf("export: verify %s: go forward: %w", path, err)
	}
	if !slices.Equal(rt.Shape, g.Shape) {
		return Check{}, fmt.Errorf("export: verify %s: output %q has shape %v in ONNX Runtime, %v in Go", path, out, rt.Shape, g.Shape)
	}
	c := Check{File: path, Output: out, Shape: g.Shape, Runtime: rt, Go: g}
	c.MaxAbsDiff, c.MaxAbs = maxAbsDiff(rt.Data, g.Data)
	return c, nil
}

// maxAbsDiff returns max |a-b| (+Inf if any element is NaN on either side)
// and max |b|.
func maxAbsDiff(a, b []float32) (diff, scale float64) {
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		diff = math.Max(diff, d)
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff, scale
}

// goForward runs u in eval mode without autograd on x.
func goForward(u *model.UNet, kind Kind, x infer.Tensor) (infer.Tensor, error) {
	in, err := ts.NewTensorFromData(x.Data, x.Shape)
	if err != nil {
		return infer.Tensor{}, err
	}
	defer torch.Drop(in)
	var y *ts.Tensor
	torch.NoGrad(func() {
		if kind == KindEncoder {
			y, err = u.Features(in, model.Eval)
		} else {
			y, err = u.Forward(in, model.Eval)
		}
	})
	if err != nil {
		return infer.Tensor{}, err
	}
	defer torch.Drop(y)
	return infer.Tensor{Shape: torch.Size(y), Data: torch.Float32s(y)}, nil
}
