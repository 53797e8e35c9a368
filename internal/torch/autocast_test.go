package torch

import (
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/npy"
)

// tensorOf makes a float32 tensor from an npz array.
func tensorOf(a npy.Array) *ts.Tensor {
	shape := make([]int64, len(a.Shape))
	for i, d := range a.Shape {
		shape[i] = int64(d)
	}
	return FromFloat32(a.Float32(), shape)
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	return worst
}

// TestAutocastMatchesPyTorch runs testdata/autocast_reference.py's network
// (conv, batch norm in training mode, ReLU, pooling, linear, cross-entropy and
// MSE) with the forward and the losses inside Autocast(CPU, BFloat16) and the
// backward after it, and compares every result with PyTorch 1.13 doing the
// same under torch.autocast: the types autocast picks (conv output bf16, the
// losses fp32), the values, the fp32 gradients and the running statistics.
// Both sides call the same libtorch on one thread, so the tolerance is 1e-6
// (the differences seen are 0).
func TestAutocastMatchesPyTorch(t *testing.T) {
	t.Cleanup(Pin())
	if err := SetThreads(1); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "autocast.npz")
	if b, err := exec.Command("/usr/bin/python3", "testdata/autocast_reference.py", out).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	ref, err := npy.ReadNPZFile(out)
	if err != nil {
		t.Fatal(err)
	}
	param := func(name string) *ts.Tensor { return SetRequiresGrad(tensorOf(ref[name]), true) }
	x, target := tensorOf(ref["x"]), tensorOf(ref["target"])
	convW, bnW, bnB, linW, linB := param("conv_w"), param("bn_w"), param("bn_b"), param("lin_w"), param("lin_b")
	rm, rv := Zeros([]int64{6}, gotch.Float), Ones([]int64{6}, gotch.Float)
	labels := FromInt64([]int64{0, 1, 2, 3}, []int64{4})
	defer Drop(x, target, convW, bnW, bnB, linW, linB, rm, rv, labels)

	var h, logits, ce, mse, loss *ts.Tensor
	Autocast(CPU, BFloat16, func() {
		c := Must(ts.Conv2d(x, convW, ts.None, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1))
		bn := Must(ts.BatchNorm(c, bnW, bnB, rm, rv, true, 0.1, 1e-5, false))
		Drop(c)
		h = Must(bn.Relu(true))
		p := Must(h.AdaptiveAvgPool2d([]int64{1, 1}, false))
		f := Must(p.Flatten(1, -1, true))
		logits = Must(ts.Linear(f, linW, linB))
		Drop(f)
		ce = Must(logits.CrossEntropyLoss(labels, ts.None, 1, -100, 0, false))
		mse = Must(h.MseLoss(target, 1, false))
		loss = Must(ce.Add(mse, false))
	})
	defer Drop(h, logits, ce, mse, loss)
	Backward(loss)

	for _, c := range []struct {
		name string
		got  *ts.Tensor
	}{{"h", h}, {"logits", logits}, {"loss", loss}} {
		want := ScalarType(ref[c.name+"_type"].Data.([]int64)[0])
		if got := TypeOf(c.got); got != want {
			t.Errorf("%s is %v under autocast, PyTorch gives %v", c.name, got, want)
		}
	}
	if TypeOf(h) != BFloat16 || TypeOf(loss) != Float32 {
		t.Fatalf("autocast did not act: conv path %v, loss %v (want bfloat16, float32)", TypeOf(h), TypeOf(loss))
	}
	grad := func(p *ts.Tensor) []float32 {
		g := Grad(p)
		defer Drop(g)
		if TypeOf(g) != Float32 {
			t.Errorf("a gradient of an fp32 weight is %v", TypeOf(g))
		}
		return Float32s(g)
	}
	worst := 0.0
	for _, c := range []struct {
		name string
		got  []float32
	}{
		{"h", Float32s(h)}, {"logits", Float32s(logits)},
		{"ce", []float32{float32(Item(ce))}}, {"mse", []float32{float32(Item(mse))}},
		{"conv_w_grad", grad(convW)}, {"lin_w_grad", grad(linW)}, {"bn_w_grad", grad(bnW)},
		{"running_mean", Float32s(rm)}, {"running_var", Float32s(rv)},
	} {
		d := maxAbsDiff(c.got, ref[c.name].Float32())
		worst = math.Max(worst, d)
		if d > 1e-6 {
			t.Errorf("%s: max |diff| vs PyTorch autocast %.3g > 1e-6", c.name, d)
		}
	}
	t.Logf("Go under Autocast vs PyTorch under torch.autocast: max |diff| %.3g over outputs, losses, gradients and running stats", worst)
	if TypeOf(rm) != Float32 || TypeOf(rv) != Float32 {
		t.Errorf("running statistics became %v/%v", TypeOf(rm), TypeOf(rv))
	}
}

// TestAutocastRestoresState: Autocast turns CPU autocast on for fn only; after
// it, also after a panic inside it and after nested regions, the thread's
// settings are what they were and an op gives float32 again.
func TestAutocastRestoresState(t *testing.T) {
	t.Cleanup(Pin())
	before := AutocastNow(CPU)
	if before.Enabled {
		t.Fatal("CPU autocast is on at the start of the test")
	}
	a := Ones([]int64{4, 4}, gotch.Float)
	defer Drop(a)
	mmType := func() ScalarType {
		y := Must(a.Mm(a, false))
		defer Drop(y)
		return TypeOf(y)
	}
	if got := mmType(); got != Float32 {
		t.Fatalf("mm outside autocast gives %v", got)
	}
	Autocast(CPU, BFloat16, func() {
		if s := AutocastNow(CPU); !s.Enabled || s.Dtype != BFloat16 {
			t.Errorf("inside Autocast: %+v", s)
		}
		if got := mmType(); got != BFloat16 {
			t.Errorf("mm inside autocast gives %v, want bfloat16", got)
		}
		Autocast(CPU, BFloat16, func() {})
		if !AutocastNow(CPU).Enabled {
			t.Error("leaving a nested region turned autocast off in the outer one")
		}
	})
	if got := AutocastNow(CPU); got != before {
		t.Errorf("after Autocast: %+v, before: %+v", got, before)
	}
	if got := mmType(); got != Float32 {
		t.Errorf("mm after autocast gives %v, want float32", got)
	}

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic from inside the region", r)
			}
		}()
		Autocast(CPU, BFloat16, func() { panic("boom") })
	}()
	if got := AutocastNow(CPU); got != before {
		t.Errorf("after a panic inside Autocast: %+v, before: %+v", got, before)
	}

	// A libtorch error inside the region comes back as an error through Do,
	// and the state is restored too.
	err := Do(func() error {
		Autocast(CPU, BFloat16, func() { Must(a.Mm(Ones([]int64{3, 3}, gotch.Float), false)) })
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "libtorch: ") {
		t.Errorf("mismatched mm inside Autocast: err = %v", err)
	}
	if got := AutocastNow(CPU); got != before {
		t.Errorf("after a libtorch error inside Autocast: %+v, before: %+v", got, before)
	}
}

// TestAutocastRefusesUnsupported: CPU autocast in libtorch 1.13 is bfloat16
// only, and CUDA autocast needs a CUDA build; both fail as errors before fn
// runs, leaving the state alone.
func TestAutocastRefusesUnsupported(t *testing.T) {
	t.Cleanup(Pin())
	ran := false
	err := Do(func() error {
		Autocast(CPU, Float16, func() { ran = true })
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "bfloat16 only") || ran {
		t.Errorf("cpu float16 autocast: err %v, fn ran %v", err, ran)
	}
	err = Do(func() error {
		Autocast(CUDA, Float16, func() { ran = true })
		return nil
	})
	if HasCUDA() {
		if err != nil || !ran {
			t.Errorf("cuda float16 autocast on a CUDA build: err %v, fn ran %v", err, ran)
		}
	} else if err == nil || !strings.Contains(err.Error(), "CUDA build") || ran {
		t.Errorf("cuda autocast on a CPU-only libtorch: err %v, fn ran %v", err, ran)
	}
	if AutocastNow(CPU).Enabled || AutocastNow(CUDA).Enabled {
		t.Error("a refused Autocast left autocast on")
	}
}

// TestUnscaleGrads: gradients are multiplied by the inverse scale; an Inf or
// NaN anywhere is reported; parameters without a gradient are skipped.
func TestUnscaleGrads(t *testing.T) {
	t.Cleanup(Pin())
	mk := func(grad []float32) *ts.Tensor {
		p := SetRequiresGrad(Zeros([]int64{int64(len(grad))}, gotch.Float), true)
		g := FromFloat32(grad, []int64{int64(len(grad))})
		y := Must(p.Mul(g, false))
		s := Must(y.Sum(gotch.Float, true))
		Backward(s)
		Drop(g, s)
		return p
	}
	a, b := mk([]float32{2, -4, 8}), mk([]float32{1024, 0.5})
	noGrad := SetRequiresGrad(Zeros([]int64{2}, gotch.Float), true)
	defer Drop(a, b, noGrad)
	found, err := UnscaleGrads([]*ts.Tensor{a, noGrad, b}, 0.25)
	if err != nil || found {
		t.Fatalf("finite gradients: found %v, err %v", found, err)
	}
	ga, gb := Grad(a), Grad(b)
	got := append(Float32s(ga), Float32s(gb)...)
	Drop(ga, gb)
	if d := maxAbsDiff(got, []float32{0.5, -1, 2, 256, 0.125}); d != 0 {
		t.Fatalf("unscaled gradients %v", got)
	}
	for _, bad := range []float32{float32(math.Inf(1)), float32(math.NaN())} {
		c := mk([]float32{1, bad})
		found, err := UnscaleGrads([]*ts.Tensor{a, c}, 1)
		Drop(c)
		if err != nil || !found {
			t.Errorf("gradient holding %v: found %v, err %v", bad, found, err)
		}
	}
}

// TestChannelsLast: 4-D tensors change layout in place, keeping handle,
// values and requires_grad; other tensors are left alone; a convolution with
// a channels-last weight gives a channels-last output equal to the NCHW one
// (fp32, within 1e-5: the summation order may differ).
func TestChannelsLast(t *testing.T) {
	t.Cleanup(Pin())
	vals := make([]float32, 6*3*3*3)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)))
	}
	w := SetRequiresGrad(FromFloat32(vals, []int64{6, 3, 3, 3}), true)
	b := FromFloat32([]float32{1, 2, 3}, []int64{3})
	xv := make([]float32, 2*3*5*5)
	for i := range xv {
		xv[i] = float32(math.Cos(float64(i)))
	}
	x := FromFloat32(xv, []int64{2, 3, 5, 5})
	defer Drop(w, b, x)
	conv := func() []float32 {
		y := Must(ts.Conv2d(x, w, ts.None, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1))
		defer Drop(y)
		if got := IsChannelsLast(y); got != IsChannelsLast(w) {
			t.Errorf("conv output channels-last %v, weight %v", got, IsChannelsLast(w))
		}
		return Float32s(y)
	}
	before := conv()
	handle := w.Ctensor()
	if IsChannelsLast(w) {
		t.Fatal("a fresh weight is channels-last")
	}
	if err := ChannelsLast([]*ts.Tensor{w, b}); err != nil {
		t.Fatal(err)
	}
	if !IsChannelsLast(w) || w.Ctensor() != handle || !RequiresGrad(w) {
		t.Fatalf("after ChannelsLast: channels-last %v, same handle %v, requires grad %v", IsChannelsLast(w), w.Ctensor() == handle, RequiresGrad(w))
	}
	if d := maxAbsDiff(Float32s(w), vals); d != 0 {
		t.Fatalf("values changed by %g", d)
	}
	if d := maxAbsDiff(conv(), before); d > 1e-5 {
		t.Fatalf("channels-last conv differs from NCHW by %g", d)
	}
	if d := maxAbsDiff(Float32s(b), []float32{1, 2, 3}); d != 0 || Size(b)[0] != 3 {
		t.Fatalf("a 1-D tensor was changed")
	}
}
