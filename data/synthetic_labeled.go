package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SyntheticFindings are the findings the labelled synthetic source can draw.
var SyntheticFindings = []string{"nodule", "opacity", "effusion", "cardiomegaly"}

// LabeledSynthetic is a built-in LabeledSource of synthetic radiographs
// (DrawRadiograph) with drawn findings and lung-field masks, for the demo and
// tests of fine-tuning. Findings, by name:
//
//   - nodule: one to three small, bright, round spots inside the lungs;
//   - opacity: a large, patchy, moderately bright area inside one lung
//     (consolidation-like);
//   - effusion: a bright haze filling the base of one or both lungs up to a
//     meniscus;
//   - cardiomegaly: a heart shadow 60-90% wider, 30-50% taller, 40% denser
//     and 3-5% higher, reaching into the lower lung fields.
//
// Image i depends only on (seed, offset+i) and the finding list: the base
// radiograph is DrawRadiograph's image offset+i, and the findings come from a
// random stream of their own, so the pre-training images are unchanged.
// Multi-label: each finding is present with probability Prevalence.
// Multi-class: with probability Prevalence the image shows exactly one
// finding, chosen uniformly, whose class is its position in Findings plus
// one; class 0 is an image without finding. Segmentation: the mask is the
// union of the drawn lung fields and the image carries no finding.
type LabeledSynthetic struct {
	N, Size    int
	Seed       uint64
	Offset     int
	Task       string
	Findings   []string
	Prevalence float64
}

// Len implements LabeledSource.
func (s *LabeledSynthetic) Len() int { return s.N }

// Name implements LabeledSource.
func (s *LabeledSynthetic) Name(i int) string {
	return fmt.Sprintf("synthetic-labeled/%d/%06d.png", s.Seed, s.Offset+i)
}

// Targets implements LabeledSource: the findings are the labels
// (multi-label), or the classes after "none" (multi-class).
func (s *LabeledSynthetic) Targets() Targets {
	t := Targets{Task: s.Task}
	switch s.Task {
	case TaskMultiLabel:
		t.Classes = slices.Clone(s.Findings)
	case TaskMultiClass:
		t.Classes = append([]string{"none"}, s.Findings...)
	}
	return t
}

// Present draws which findings image i shows (a flag per entry of Findings).
func (s *LabeledSynthetic) Present(i int) []bool {
	r := s.findingRNG(i)
	present := make([]bool, len(s.Findings))
	switch s.Task {
	case TaskMultiLabel:
		for k := range present {
			present[k] = r.Float64() < s.Prevalence
		}
	case TaskMultiClass:
		if r.Float64() < s.Prevalence {
			present[r.IntN(len(present))] = true
		}
	}
	return present
}

// findingRNG is image i's finding stream, apart from the base image's.
func (s *LabeledSynthetic) findingRNG(i int) *rand.Rand {
	return rand.New(rand.NewPCG(s.Seed^0x5bd1e9955bd1e995, splitmix64(uint64(s.Offset+i))^0x94d049bb133111eb))
}

// LoadExample implements LabeledSource; it never fails for an index in range.
func (s *LabeledSynthetic) LoadExample(i int) (Example, error) {
	if i < 0 || i >= s.N {
		return Example{}, fmt.Errorf("data: %s: index %d out of range [0, %d)", s.Name(0), i, s.N)
	}
	ex := Example{Class: -1}
	if s.Task == TaskSegmentation {
		mask := NewImage(s.Size, s.Size, 1)
		ex.Image = drawRadiograph(s.Size, s.Seed, uint64(s.Offset+i), nil, mask)
		ex.Mask = mask
		return ex, nil
	}
	present := s.Present(i)
	r := s.findingRNG(i)
	// Skip the draws Present made, so the finding shapes use fresh numbers.
	if s.Task == TaskMultiLabel {
		for range present {
			r.Float64()
		}
	} else if r.Float64() < s.Prevalence {
		r.IntN(len(present))
	}
	ov := &findingOverlay{heartX: 1, heartY: 1, heartGain: 1}
	var terms []func(u, v, body, lr, ll float64) float64
	for k, name := range s.Findings {
		if !present[k] {
			continue
		}
		switch name {
		case "nodule":
			terms = append(terms, noduleTerm(r))
		case "opacity":
			terms = append(terms, opacityTerm(r))
		case "effusion":
			terms = append(terms, effusionTerm(r))
		case "cardiomegaly":
			ov.heartX, ov.heartY = uniform(r, 1.6, 1.9), uniform(r, 1.3, 1.5)
			ov.heartUp, ov.heartGain = uniform(r, 0.03, 0.05), 1.4
		}
	}
	ov.density = func(u, v, body, lr, ll float64) float64 {
		d := 0.0
		for _, t := range terms {
			d += t(u, v, body, lr, ll)
		}
		return d
	}
	ex.Image = drawRadiograph(s.Size, s.Seed, uint64(s.Offset+i), ov, nil)
	switch s.Task {
	case TaskMultiLabel:
		ex.Labels = make([]float32, len(present))
		for k, p := range present {
			if p {
				ex.Labels[k] = 1
			}
		}
	case TaskMultiClass:
		ex.Class = 0
		if k := slices.Index(present, true); k >= 0 {
			ex.Class = k + 1
		}
	}
	return ex, nil
}

// lungPoint draws a point well inside one of the lung fields, in the patient
// coordinates of DrawRadiograph (lungs centred near u = 0.32 and 0.68, v = 0.45).
func lungPoint(r *rand.Rand) (u, v float64) {
	u = uniform(r, 0.22, 0.36)
	if r.IntN(2) == 1 {
		u = 1 - u
	}
	return u, uniform(r, 0.28, 0.58)
}

// noduleTerm draws one to three nodules: bright discs of radius 3-5% of the
// image with a soft edge.
func noduleTerm(r *rand.Rand) func(u, v, body, lr, ll float64) float64 {
	type disc struct{ u, v, r2, amp float64 }
	n := 1 + r.IntN(3)
	ds := make([]disc, n)
	for i := range ds {
		u, v := lungPoint(r)
		rad := uniform(r, 0.03, 0.05)
		ds[i] = disc{u, v, rad * rad, uniform(r, 0.22, 0.3)}
	}
	return func(u, v, body, lr, ll float64) float64 {
		d := 0.0
		for _, c := range ds {
			du, dv := u-c.u, v-c.v
			d += c.amp * smoothstep(1, 0.55, (du*du+dv*dv)/c.r2) * body
		}
		return d
	}
}

// opacityTerm draws a consolidation-like patch: a large soft blob inside one
// lung, modulated by coarse noise.
func opacityTerm(r *rand.Rand) func(u, v, body, lr, ll float64) float64 {
	u0, v0 := lungPoint(r)
	left := u0 > 0.5
	ru, rv := uniform(r, 0.09, 0.13), uniform(r, 0.11, 0.16)
	amp := uniform(r, 0.26, 0.34)
	noise := newValueNoise(r, 6)
	return func(u, v, body, lr, ll float64) float64 {
		lung := lr
		if left {
			lung = ll
		}
		du, dv := (u-u0)/ru, (v-v0)/rv
		return amp * lung * smoothstep(1, 0.35, du*du+dv*dv) * (0.75 + 0.35*noise.at(u, v))
	}
}

// effusionTerm draws pleural effusion: the base of one or both lungs filled
// with a bright haze up to a meniscus that rises towards the chest wall.
func effusionTerm(r *rand.Rand) func(u, v, body, lr, ll float64) float64 {
	sides := 1 + r.IntN(3) // 1: right lung (image left), 2: left lung, 3: both
	level := uniform(r, 0.55, 0.62)
	amp := uniform(r, 0.3, 0.38)
	return func(u, v, body, lr, ll float64) float64 {
		lung := 0.0
		if sides&1 != 0 {
			lung = max(lung, lr)
		}
		if sides&2 != 0 {
			lung = max(lung, ll)
		}
		if lung == 0 {
			return 0
		}
		// The meniscus is higher laterally (|u - 0.5| large).
		top := level - 0.12*math.Abs(u-0.5)
		return amp * lung * smoothstep(top-0.02, top+0.04, v)
	}
}
