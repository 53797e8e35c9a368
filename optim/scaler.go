package optim

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// GradScaler is dynamic loss scaling for float16 training, as PyTorch 1.13's
// torch.cuda.amp.GradScaler: float16 gradients underflow to zero below about
// 6e-8, so the loss is multiplied by a large scale before the backward pass
// and the gradients are divided by it before the optimiser step. A step whose
// gradients hold an Inf or a NaN (the scale was too large) is skipped and the
// scale is multiplied by BackoffFactor; after GrowthInterval steps in a row
// without one, it is multiplied by GrowthFactor. One iteration is
//
//	scaled := s.ScaleLoss(loss); backward(scaled)
//	s.Step(opt.Params, opt.Step)     // for each optimiser, after its backward
//	s.Update()                       // once, at the end of the iteration
//
// The scale is a float32 value, as PyTorch's scale tensor, so the arithmetic
// (and a resumed run) matches it exactly. The exported fields are the
// scaler's whole state: a checkpoint stores them as JSON.
type GradScaler struct {
	Scale          float64 `json:"scale"`           // current loss scale (PyTorch's init_scale 2^16)
	GrowthFactor   float64 `json:"growth_factor"`   // scale multiplier after GrowthInterval clean steps (2)
	BackoffFactor  float64 `json:"backoff_factor"`  // scale multiplier after a non-finite step (0.5)
	GrowthInterval int     `json:"growth_interval"` // clean steps in a row before growth (2000)
	GrowthTracker  int     `json:"growth_tracker"`  // clean steps in a row so far

	foundInf bool // a Step of this iteration met a non-finite gradient
}

// NewGradScaler returns a scaler with torch.cuda.amp.GradScaler's defaults.
func NewGradScaler() *GradScaler {
	return &GradScaler{Scale: 65536, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2000}
}

// ScaleLoss returns loss*Scale as a new tensor (the caller runs the backward
// pass from it and drops it).
func (s *GradScaler) ScaleLoss(loss *ts.Tensor) (scaled *ts.Tensor, err error) {
	defer torch.Catch("grad scaler: scale loss", &err)
	f := torch.FloatScalar(float64(float32(s.Scale)))
	defer torch.DropScalars(f)
	return torch.Must(loss.MulScalar(f, false)), nil
}

// Step unscales the gradients of params (divides them by Scale) and calls
// step unless one of them holds an Inf or a NaN; skipped reports that it did
// not. As in PyTorch, an optimiser's gradients must be unscaled only once
// per iteration: call Step once per optimiser.
func (s *GradScaler) Step(params []*ts.Tensor, step func() error) (skipped bool, err error) {
	inv := float32(1 / float64(float32(s.Scale))) // PyTorch: scale.double().reciprocal().float()
	found, err := torch.UnscaleGrads(params, inv)
	if err != nil {
		return false, fmt.Errorf("grad scaler: %w", err)
	}
	if found {
		s.foundInf = true
		return true, nil
	}
	return false, step()
}

// Update adjusts the scale at the end of an iteration (PyTorch 1.13's
// _amp_update_scale_): after a non-finite gradient in any Step since the last
// Update, Scale *= BackoffFactor and the count of clean steps restarts;
// otherwise the count grows, and at GrowthInterval Scale *= GrowthFactor
// (kept if the result is finite) and the count restarts.
func (s *GradScaler) Update() {
	scale := float32(s.Scale)
	if s.foundInf {
		scale *= float32(s.BackoffFactor)
		s.GrowthTracker = 0
	} else if s.GrowthTracker+1 == s.GrowthInterval {
		if grown := scale * float32(s.GrowthFactor); !math.IsInf(float64(grown), 0) && !math.IsNaN(float64(grown)) {
			scale = grown
		}
		s.GrowthTracker = 0
	} else {
		s.GrowthTracker++
	}
	s.Scale = float64(scale)
	s.foundInf = false
}
