package data

import (
	"math"
	"math/rand/v2"
)

// This file builds one training sample as the official DiRA Transform does
// (spec 3.1): two independent RandomResizedCrops of the image, each augmented by
// ColorJitter (p 0.8), GaussianBlur (p 0.5) and a horizontal flip (p 0.5), each
// then distorted for restoration (spec 3.2); the target is the clean gray crop
// of view 1. Random numbers come from a per-sample math/rand/v2 PCG, not from
// torch's generator, so draws are distributed like torchvision's, not equal.

// CropBox is a crop region in pixels.
type CropBox struct{ Top, Left, H, W int }

// RandomCropBox draws RandomResizedCrop parameters as torchvision 0.14 does:
// up to 10 attempts with area fraction ~ U(scale) and aspect ratio w/h
// log-uniform in ratio; w and h rounded half to even (Python round); the first
// box that fits wins, placed uniformly. If none fits, a center crop of the whole
// image clamped to the ratio range.
func RandomCropBox(r *rand.Rand, w, h int, scale, ratio [2]float64) CropBox {
	area := float64(w * h)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * uniform(r, scale[0], scale[1])
		aspect := math.Exp(uniform(r, logLo, logHi))
		cw := int(math.RoundToEven(math.Sqrt(target * aspect)))
		ch := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			return CropBox{Top: r.IntN(h - ch + 1), Left: r.IntN(w - cw + 1), H: ch, W: cw}
		}
	}
	inRatio := float64(w) / float64(h)
	cw, ch := w, h
	switch {
	case inRatio < min(ratio[0], ratio[1]):
		ch = int(math.RoundToEven(float64(cw) / min(ratio[0], ratio[1])))
	case inRatio > max(ratio[0], ratio[1]):
		cw = int(math.RoundToEven(float64(ch) * max(ratio[0], ratio[1])))
	}
	return CropBox{Top: (h - ch) / 2, Left: (w - cw) / 2, H: ch, W: cw}
}

// JitterParams are the draws of one ColorJitter application.
type JitterParams struct {
	Order                                      [4]int // 0 brightness, 1 contrast, 2 saturation, 3 hue
	Brightness, Contrast, Saturation, Hue      float64
	HasBrightness, HasContrast, HasSat, HasHue bool
}

// drawJitter draws torchvision ColorJitter.get_params: a random order of the four
// adjustments and one factor per enabled adjustment.
func drawJitter(r *rand.Rand, a AugmentConfig) JitterParams {
	var p JitterParams
	perm := r.Perm(4)
	copy(p.Order[:], perm)
	factor := func(s float64) float64 { return uniform(r, max(0, 1-s), 1+s) }
	if a.Brightness > 0 {
		p.HasBrightness, p.Brightness = true, factor(a.Brightness)
	}
	if a.Contrast > 0 {
		p.HasContrast, p.Contrast = true, factor(a.Contrast)
	}
	if a.Saturation > 0 {
		p.HasSat, p.Saturation = true, factor(a.Saturation)
	}
	if a.Hue > 0 {
		p.HasHue, p.Hue = true, uniform(r, -a.Hue, a.Hue)
	}
	return p
}

// ColorJitter applies the adjustments of p in p.Order, as torchvision's
// ColorJitter.forward does.
func ColorJitter(m *Image, p JitterParams) *Image {
	for _, fn := range p.Order {
		switch {
		case fn == 0 && p.HasBrightness:
			m = AdjustBrightness(m, p.Brightness)
		case fn == 1 && p.HasContrast:
			m = AdjustContrast(m, p.Contrast)
		case fn == 2 && p.HasSat:
			m = AdjustSaturation(m, p.Saturation)
		case fn == 3 && p.HasHue:
			m = AdjustHue(m, p.Hue)
		}
	}
	return m
}

// ViewInfo records the random choices made for one view.
type ViewInfo struct {
	Crop    CropBox
	Jitter  *JitterParams // nil when ColorJitter was not applied
	Blur    float64       // PIL radius; 0 when the blur was not applied
	Flipped bool
	Distort Distortion
}

// augmentView applies T_aug (jitter, blur, flip) to a clean crop.
func augmentView(r *rand.Rand, crop *Image, a AugmentConfig, info *ViewInfo) *Image {
	m := crop
	if r.Float64() < a.JitterP {
		p := drawJitter(r, a)
		info.Jitter = &p
		m = ColorJitter(m, p)
	}
	if r.Float64() < a.BlurP {
		info.Blur = uniform(r, a.BlurSigma[0], a.BlurSigma[1])
		m = GaussianBlur(m, info.Blur)
	}
	if r.Float64() < a.FlipP {
		info.Flipped = true
		m = FlipH(m)
	}
	if m == crop {
		m = crop.Clone() // the caller may distort the view in place; keep the crop clean
	}
	return m
}

// Sample is one training example: the two views fed to the query and key
// encoders and, in modes dir/dira, the restoration target.
type Sample struct {
	Query, Key *Image // view 1 and view 2, size×size, gray (C=1) or RGB
	Target     *Image // gray clean crop of view 1; nil without restoration
	Info       [2]ViewInfo
}

// MakeSample builds a Sample from a decoded image with the random stream r.
// With restoration (modes dir/dira) both views are distorted and the target is
// the gray, un-jittered crop of view 1, flipped with view 1 only when
// a.FlipTarget is set (the official code never flips it). Without restoration
// (mode di) the views are not distorted and Target is nil. a must be valid
// (Config.Validate).
func MakeSample(r *rand.Rand, img *Image, size int, a AugmentConfig, restoration bool) Sample {
	scale := [2]float64{a.CropScale[0], a.CropScale[1]}
	ratio := [2]float64{a.CropRatio[0], a.CropRatio[1]}
	var s Sample
	// Both crops are drawn before any view is augmented, as in the official code.
	var crops [2]*Image
	for v := range crops {
		b := RandomCropBox(r, img.W, img.H, scale, ratio)
		s.Info[v].Crop = b
		crops[v] = ResizedCrop(img, b.Top, b.Left, b.H, b.W, size, size)
	}
	views := [2]*Image{}
	for v := range views {
		views[v] = augmentView(r, crops[v], a, &s.Info[v])
	}
	if restoration {
		for v := range views {
			s.Info[v].Distort = Distort(r, views[v], a)
		}
		t := crops[0].Gray()
		if a.FlipTarget && s.Info[0].Flipped {
			t = FlipH(t)
		}
		s.Target = t
	}
	s.Query, s.Key = views[0], views[1]
	return s
}
