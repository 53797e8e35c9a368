package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Synthetic is a built-in Source of drawn chest-radiograph-like grayscale images:
// a thorax with two dark lung fields, the heart shadow, the spine with
// vertebrae, posterior ribs, clavicles, the diaphragm, lung texture and sensor
// noise, all varied per image. Image i depends only on (seed, offset+i), so it is
// the same whatever order, worker or size of batch asks for it. It lets every
// command and test run without a dataset; it is no substitute for real data.
type Synthetic struct {
	n, size int
	seed    uint64
	offset  int
}

// NewSynthetic returns n synthetic images of size×size pixels. Image i is drawn
// from (seed, offset+i): a validation source uses offset = the training count so
// that the two sets differ.
func NewSynthetic(n, size int, seed uint64, offset int) *Synthetic {
	return &Synthetic{n: n, size: size, seed: seed, offset: offset}
}

// Len implements Source.
func (s *Synthetic) Len() int { return s.n }

// Name implements Source.
func (s *Synthetic) Name(i int) string {
	return fmt.Sprintf("synthetic/%d/%06d.png", s.seed, s.offset+i)
}

// Load implements Source; it never fails for an index in range.
func (s *Synthetic) Load(i int) (*Image, error) {
	if i < 0 || i >= s.n {
		return nil, fmt.Errorf("data: %s: index %d out of range [0, %d)", s.Name(0), i, s.n)
	}
	return DrawRadiograph(s.size, s.seed, uint64(s.offset+i)), nil
}

// splitmix64 is the SplitMix64 finaliser, used to turn small integers (indices,
// epochs) into well-mixed PCG stream seeds.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// uniform draws from [lo, hi).
func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

func smoothstep(e0, e1, x float64) float64 {
	t := (x - e0) / (e1 - e0)
	if t <= 0 {
		return 0
	}
	if t >= 1 {
		return 1
	}
	return t * t * (3 - 2*t)
}

// valueNoise is a grid of random values interpolated bilinearly over [0,1]².
type valueNoise struct {
	n int
	v []float64
}

func newValueNoise(r *rand.Rand, n int) valueNoise {
	v := make([]float64, (n+1)*(n+1))
	for i := range v {
		v[i] = r.Float64()*2 - 1
	}
	return valueNoise{n: n, v: v}
}

func (g valueNoise) at(u, v float64) float64 {
	x := min(max(u, 0), 1) * float64(g.n)
	y := min(max(v, 0), 1) * float64(g.n)
	x0, y0 := min(int(x), g.n-1), min(int(y), g.n-1)
	fx, fy := x-float64(x0), y-float64(y0)
	fx, fy = fx*fx*(3-2*fx), fy*fy*(3-2*fy)
	w := g.n + 1
	a := g.v[y0*w+x0] + (g.v[y0*w+x0+1]-g.v[y0*w+x0])*fx
	b := g.v[(y0+1)*w+x0] + (g.v[(y0+1)*w+x0+1]-g.v[(y0+1)*w+x0])*fx
	return a + (b-a)*fy
}

// lungShape describes one lung field in normalised coordinates.
type lungShape struct{ cx, cy, ax, ay float64 }

// mask is 1 inside the lung and falls to 0 across a soft border. The field is
// narrower at the apex and widest just above the diaphragm, like a real lung.
func (l lungShape) mask(u, v float64) float64 {
	t := (v - (l.cy - l.ay)) / (2 * l.ay) // 0 at the apex, 1 at the base
	ax := l.ax * (0.7 + 0.4*min(max(t, 0), 1))
	du, dv := (u-l.cx)/ax, (v-l.cy)/l.ay
	return smoothstep(1.0, 0.78, du*du+dv*dv)
}

// DrawRadiograph draws synthetic image number index for seed, size×size pixels,
// as a gray Image. See Synthetic.
func DrawRadiograph(size int, seed, index uint64) *Image {
	return drawRadiograph(size, seed, index, nil, nil)
}

// findingOverlay adds findings to a drawn radiograph (synthetic_labeled.go).
// The base image's random draws are unaffected by it: an image drawn with an
// overlay differs from the plain one only where the findings are.
type findingOverlay struct {
	heartX, heartY float64 // heart half-axes multiplied by these (cardiomegaly)
	heartUp        float64 // heart centre moved up by this (image fraction)
	heartGain      float64 // heart density multiplied by this
	// density returns the extra density at patient coordinates (u, v), given
	// the body mask and the two lung masks there.
	density func(u, v, body, lungR, lungL float64) float64
}

// drawRadiograph draws image index for seed, with the findings of ov when it
// is not nil, and writes the lung-field mask (255 where the drawn lungs cover
// more than half a pixel's weight) into mask when it is not nil.
func drawRadiograph(size int, seed, index uint64, ov *findingOverlay, mask *Image) *Image {
	r := rand.New(rand.NewPCG(seed, splitmix64(index)))
	// Patient position and build.
	tilt := uniform(r, -0.05, 0.05)
	dx, dy := uniform(r, -0.03, 0.03), uniform(r, -0.03, 0.03)
	bodyW := uniform(r, 0.42, 0.49)
	lx, ly := uniform(r, 0.17, 0.2), uniform(r, 0.43, 0.48)
	ax, ay := uniform(r, 0.13, 0.16), uniform(r, 0.27, 0.33)
	lungs := [2]lungShape{
		{0.5 - lx, ly, ax * uniform(r, 0.95, 1.05), ay},
		{0.5 + lx, ly + uniform(r, -0.01, 0.02), ax * uniform(r, 0.85, 0.95), ay * uniform(r, 0.92, 0.98)},
	}
	aeration := uniform(r, 0.3, 0.4)
	// The heart sits left of the patient's midline: on the image's right.
	hx, hy := 0.5+uniform(r, 0.03, 0.07), uniform(r, 0.6, 0.66)
	hax, hay := uniform(r, 0.12, 0.16), uniform(r, 0.09, 0.12)
	spineW := uniform(r, 0.035, 0.05)
	vertebra := uniform(r, 0.05, 0.06)
	nRibs := 9 + r.IntN(3)
	ribTop, ribStep := uniform(r, 0.18, 0.22), uniform(r, 0.052, 0.062)
	ribDrop, ribThick := uniform(r, 0.18, 0.26), uniform(r, 0.011, 0.015)
	diaphragm := ly + ay*uniform(r, 0.78, 0.9)
	gain, bias := uniform(r, 0.85, 1.1), uniform(r, -0.05, 0.05)
	noiseSigma := uniform(r, 0.006, 0.018)
	coarse, fine := newValueNoise(r, 10), newValueNoise(r, 48)
	heartAmp := 0.17
	if ov != nil {
		hax, hay, hy = hax*ov.heartX, hay*ov.heartY, hy-ov.heartUp
		heartAmp *= ov.heartGain
	}

	cosT, sinT := math.Cos(tilt), math.Sin(tilt)
	out := NewImage(size, size, 1)
	inv := 1 / float64(size)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			// Patient coordinates: shifted and tilted image coordinates.
			pu := (float64(x)+0.5)*inv - 0.5 - dx
			pv := (float64(y)+0.5)*inv - 0.5 - dy
			u := 0.5 + cosT*pu - sinT*pv
			v := 0.5 + sinT*pu + cosT*pv
			side := u - 0.5
			as := math.Abs(side)

			// Soft tissue: thicker at the midline, fading at the body outline.
			// The outline is a rounded box: flat flanks, shoulders at the top.
			bu, bv := side/bodyW, (v-0.6)/0.72
			bu2 := bu * bu
			body := smoothstep(1.0, 0.9, 0.55*bu2*bu2+0.45*bu2+bv*bv)
			d := 0.05 + body*(0.42+0.16*(1-min(bu*bu, 1)))

			// Abdomen below the diaphragm is dense.
			d += body * 0.16 * smoothstep(diaphragm-0.02, diaphragm+0.03, v+0.04*math.Cos(side*6))

			// Lungs are air: much darker. Texture (vessels) shows inside them.
			lungR, lungL := lungs[0].mask(u, v), lungs[1].mask(u, v)
			lung := max(lungR, lungL) * body
			d -= lung * aeration * (1 - 0.25*smoothstep(0.3, 0.1, v))
			d += lung * (0.035*coarse.at(u, v) + 0.03*fine.at(u, v))

			// Heart shadow.
			hu, hv := (u-hx)/hax, (v-hy)/hay
			d += heartAmp * smoothstep(1.0, 0.5, hu*hu+hv*hv) * body
			// Mediastinum between the lungs, above the heart.
			d += 0.07 * smoothstep(0.08, 0.04, as) * smoothstep(0.1, 0.25, v) * body

			// Spine: a bright column with darker intervertebral discs.
			spine := smoothstep(spineW, spineW*0.7, as) * body
			disc := 0.5 + 0.5*math.Cos(2*math.Pi*v/vertebra)
			d += spine * (0.06 + 0.05*disc*disc)

			// Posterior ribs: arcs from the spine, rising then falling laterally.
			if as > spineW*0.6 && as < bodyW {
				t := (as - spineW*0.6) / 0.38
				arc := -0.05*t + ribDrop*t*t
				for k := 0; k < nRibs; k++ {
					dist := (v - (ribTop + float64(k)*ribStep + arc)) / ribThick
					if dist > -3 && dist < 3 {
						// Bright cortex at the edges, fainter medulla in the middle.
						d += body * (0.35 + 0.65*lung) * (0.07*math.Exp(-dist*dist) + 0.03*math.Exp(-(math.Abs(dist)-1)*(math.Abs(dist)-1)*4))
					}
				}
			}

			// Clavicles: two bars from the top of the sternum outwards and up.
			if as < 0.34 && v < 0.3 {
				cv := 0.16 - 0.12*(as-0.04)
				if as > 0.04 {
					dist := (v - cv) / 0.014
					d += 0.14 * math.Exp(-dist*dist) * body
				}
			}

			if ov != nil {
				d += ov.density(u, v, body, lungR*body, lungL*body)
			}
			if mask != nil && lung > 0.5 {
				mask.Pix[y*size+x] = 255
			}
			val := gain*d + bias + noiseSigma*r.NormFloat64()
			out.Pix[y*size+x] = uint8(min(max(val, 0), 1)*255 + 0.5)
		}
	}
	return out
}
