package optim

import (
	"encoding/json"
	"math"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
	"dira/internal/torch/torchtest"
)

// fakeBackward sets p's gradient to scale*grad (loss = scale * sum(p*grad)),
// the gradient a scaled loss gives.
func fakeBackward(t *testing.T, s *GradScaler, p *ts.Tensor, grad []float32) {
	t.Helper()
	if err := ZeroGrad([]*ts.Tensor{p}); err != nil {
		t.Fatal(err)
	}
	g := torch.FromFloat32(grad, []int64{int64(len(grad))})
	y := torch.Must(p.Mul(g, false))
	loss := torch.Must(y.Sum(gotch.Float, true))
	scaled, err := s.ScaleLoss(loss)
	if err != nil {
		t.Fatal(err)
	}
	torch.Backward(scaled)
	torch.Drop(g, loss, scaled)
}

// TestGradScalerMatchesUnscaledSGD: with finite gradients, SGD steps taken
// through the scaler (loss x 2^16, gradients / 2^16) leave the parameter and
// the momentum buffer bit-identical to plain SGD steps: scaling by a power of
// two is exact.
func TestGradScalerMatchesUnscaledSGD(t *testing.T) {
	torchtest.Pin(t)
	grads := [][]float32{{0.5, -1.25, 3e-3}, {-2, 0.75, 1e-6}, {1e-4, 4, -0.5}}
	run := func(scaler *GradScaler) []float32 {
		p := torch.SetRequiresGrad(torch.FromFloat32([]float32{1, -2, 0.5}, []int64{3}), true)
		o := &SGD{Params: []*ts.Tensor{p}, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4}
		for _, g := range grads {
			if scaler == nil {
				fakeBackward(t, &GradScaler{Scale: 1}, p, g)
				if err := o.Step(); err != nil {
					t.Fatal(err)
				}
				continue
			}
			fakeBackward(t, scaler, p, g)
			if skipped, err := scaler.Step(o.Params, o.Step); err != nil || skipped {
				t.Fatalf("finite gradients: skipped %v, err %v", skipped, err)
			}
			scaler.Update()
		}
		out := append(torch.Float32s(p), torch.Float32s(o.Bufs[0])...)
		torch.Drop(p)
		torch.Drop(o.Bufs...)
		return out
	}
	s := NewGradScaler()
	plain, scaled := run(nil), run(s)
	if !slices.Equal(plain, scaled) {
		t.Fatalf("parameter and momentum after 3 steps: plain %v, scaled %v", plain, scaled)
	}
	if s.Scale != 65536 || s.GrowthTracker != 3 {
		t.Fatalf("after 3 clean steps: scale %v, tracker %d; want 65536, 3", s.Scale, s.GrowthTracker)
	}
}

// TestGradScalerSkipsAndBacksOff: an Inf or NaN gradient skips the step (the
// parameter and the optimiser state stay as they were), halves the scale and
// restarts the count of clean steps; GrowthInterval clean steps double it; a
// growth that would overflow float32 keeps the scale. The scaler's state
// round-trips through JSON (as a checkpoint holds it).
func TestGradScalerSkipsAndBacksOff(t *testing.T) {
	torchtest.Pin(t)
	p := torch.SetRequiresGrad(torch.FromFloat32([]float32{1, 2}, []int64{2}), true)
	defer torch.Drop(p)
	o := &SGD{Params: []*ts.Tensor{p}, LR: 0.5}
	s := &GradScaler{Scale: 1024, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 3}
	type want struct {
		p       []float32
		skipped bool
		scale   float64
		tracker int
	}
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for i, c := range []struct {
		grad []float32
		want want
	}{
		{[]float32{1, 1}, want{[]float32{0.5, 1.5}, false, 1024, 1}},
		{[]float32{inf, 1}, want{[]float32{0.5, 1.5}, true, 512, 0}},
		{[]float32{2, nan}, want{[]float32{0.5, 1.5}, true, 256, 0}},
		{[]float32{1, 0}, want{[]float32{0, 1.5}, false, 256, 1}},
		{[]float32{0, 1}, want{[]float32{0, 1}, false, 256, 2}},
		{[]float32{0, 0}, want{[]float32{0, 1}, false, 512, 0}}, // third clean step: growth
		// A finite gradient that overflows once scaled is skipped too.
		{[]float32{1e36, 0}, want{[]float32{0, 1}, true, 256, 0}},
	} {
		fakeBackward(t, s, p, c.grad)
		skipped, err := s.Step(o.Params, o.Step)
		if err != nil {
			t.Fatal(err)
		}
		s.Update()
		got := want{torch.Float32s(p), skipped, s.Scale, s.GrowthTracker}
		if !slices.Equal(got.p, c.want.p) || got.skipped != c.want.skipped || got.scale != c.want.scale || got.tracker != c.want.tracker {
			t.Fatalf("iteration %d (grad %v): got %+v, want %+v", i+1, c.grad, got, c.want)
		}
	}

	top := &GradScaler{Scale: float64(math.MaxFloat32) / 1.5, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 1}
	before := top.Scale
	top.Update()
	if top.Scale != float64(float32(before)) || top.GrowthTracker != 0 {
		t.Errorf("growth past float32's range: scale %g -> %g, tracker %d", before, top.Scale, top.GrowthTracker)
	}

	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back GradScaler
	if err := json.Unmarshal(b, &back); err != nil || back != *s {
		t.Fatalf("JSON round trip %s gave %+v (%v), want %+v", b, back, err, *s)
	}
}
