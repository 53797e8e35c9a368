package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
)

// This file holds the classification transforms of the DiRA benchmark code
// (BenchmarkTransferLearning Version1, dataloader.py
// build_transform_classification), on PIL-like 8-bit images as torchvision 0.14
// runs them on PIL images:
//
//	train: RandomResizedCrop(crop) + RandomHorizontalFlip() + RandomRotation(7)
//	       + ToTensor() + Normalize
//	valid: Resize((resize, resize)) + CenterCrop(crop) + ToTensor() + Normalize
//	test:  Resize((resize, resize)) + TenCrop(crop) + ToTensor() + Normalize
//	       on each crop (test_augment, the default), else as valid
//
// The official Resize gets a (resize, resize) pair, so it squashes the image to
// a square; Resize of the shorter side (a single int) is offered as an option.

// Resize returns m resized to w×h with PIL's antialiased bilinear filter: what
// torchvision 0.14's Resize((h, w)) does to a PIL image.
func Resize(m *Image, w, h int) *Image { return ResizedCrop(m, 0, 0, m.H, m.W, h, w) }

// ResizeShorter returns m resized so that its shorter side is size and the
// longer one int(size·long/short), keeping the aspect ratio as torchvision
// 0.14's Resize(size) does with a single int.
func ResizeShorter(m *Image, size int) *Image {
	w, h := m.W, m.H
	short, long := w, h
	if w > h {
		short, long = h, w
	}
	newLong := int(float64(size) * float64(long) / float64(short))
	if w <= h {
		return Resize(m, size, newLong)
	}
	return Resize(m, newLong, size)
}

// Crop returns the h×w region of m with top-left corner (top, left); parts
// outside m are black (PIL's crop).
func Crop(m *Image, top, left, h, w int) *Image { return cropPadded(m, top, left, h, w) }

// CenterCrop returns the central h×w region of m as torchvision 0.14's
// F.center_crop: the offset is round((size - crop) / 2) rounded half to even
// (Python's round), and an image smaller than the crop is first padded with
// black, the odd pixel going to the right and bottom.
func CenterCrop(m *Image, h, w int) *Image {
	if w > m.W || h > m.H {
		padL, padT := 0, 0
		if w > m.W {
			padL = (w - m.W) / 2
		}
		if h > m.H {
			padT = (h - m.H) / 2
		}
		pw, ph := max(w, m.W), max(h, m.H)
		m = cropPadded(m, -padT, -padL, ph, pw)
		if m.W == w && m.H == h {
			return m
		}
	}
	top := int(math.RoundToEven(float64(m.H-h) / 2))
	left := int(math.RoundToEven(float64(m.W-w) / 2))
	return cropPadded(m, top, left, h, w)
}

// TenCrop returns torchvision 0.14's ten_crop(m, (h, w)): the top-left,
// top-right, bottom-left, bottom-right and center crops of m, then the same
// five of m flipped left to right. The crop must fit inside m.
func TenCrop(m *Image, h, w int) ([10]*Image, error) {
	var out [10]*Image
	if h > m.H || w > m.W || h < 1 || w < 1 {
		return out, fmt.Errorf("data: ten crop %dx%d does not fit a %dx%d image", w, h, m.W, m.H)
	}
	five := func(src *Image, dst []*Image) {
		dst[0] = cropPadded(src, 0, 0, h, w)
		dst[1] = cropPadded(src, 0, src.W-w, h, w)
		dst[2] = cropPadded(src, src.H-h, 0, h, w)
		dst[3] = cropPadded(src, src.H-h, src.W-w, h, w)
		dst[4] = CenterCrop(src, h, w)
	}
	five(m, out[:5])
	five(FlipH(m), out[5:])
	return out, nil
}

// Interpolation selects how Rotate samples the source image.
type Interpolation int

// Interpolations of Rotate, as PIL's resampling filters.
const (
	Nearest  Interpolation = iota // PIL NEAREST: torchvision RandomRotation's default, used by the official code
	Bilinear                      // PIL BILINEAR
)

// ParseInterpolation maps "nearest" and "bilinear" to an Interpolation.
func ParseInterpolation(s string) (Interpolation, error) {
	switch s {
	case "nearest":
		return Nearest, nil
	case "bilinear":
		return Bilinear, nil
	}
	return 0, fmt.Errorf("data: interpolation must be nearest or bilinear, got %q", s)
}

// Rotate returns m rotated by degrees counter-clockwise about its center,
// same size, corners filled with black: torchvision 0.14's F.rotate(img,
// degrees, interpolation, expand=False, center=None, fill=0) on a PIL image,
// which is PIL's Image.rotate. It follows PIL 9.4 exactly: the inverse matrix
// rounded to 15 decimals, nearest sampling in 16.16 fixed point
// (affine_fixed in Geometry.c), bilinear sampling in double precision with the
// result truncated to 8 bits.
func Rotate(m *Image, degrees float64, interp Interpolation) *Image {
	a := math.Mod(degrees, 360)
	if a < 0 {
		a += 360 // Python's % takes the sign of the divisor
	}
	switch {
	case a == 0:
		return m.Clone()
	case a == 180:
		return rotate180(m)
	}
	w, h := float64(m.W), float64(m.H)
	cx, cy := w/2, h/2
	rad := -degrees * math.Pi / 180 // math.radians
	cos, sin := round15(math.Cos(rad)), round15(math.Sin(rad))
	msin := round15(-math.Sin(rad))
	mat := [6]float64{cos, sin, 0, msin, cos, 0}
	// PIL: matrix[2], matrix[5] = transform(-cx, -cy); then += cx, cy.
	mat[2] = float64(mat[0]*-cx) + float64(mat[1]*-cy) + mat[2]
	mat[5] = float64(mat[3]*-cx) + float64(mat[4]*-cy) + mat[5]
	mat[2] += cx
	mat[5] += cy
	if interp == Bilinear {
		return affineBilinear(m, mat)
	}
	return affineNearest(m, mat)
}

// round15 is Python's round(v, 15): correctly rounded to 15 decimals.
func round15(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 15, 64), 64)
	return r
}

func rotate180(m *Image) *Image {
	out := NewImage(m.W, m.H, m.C)
	n := m.W * m.H
	for i := 0; i < n; i++ {
		copy(out.Pix[(n-1-i)*m.C:(n-i)*m.C], m.Pix[i*m.C:(i+1)*m.C])
	}
	return out
}

// pilFloor is PIL's FLOOR macro: floor for negative values, truncation else.
func pilFloor(v float64) int {
	if v < 0 {
		return int(math.Floor(v))
	}
	return int(v)
}

// affineNearest is PIL's ImagingTransformAffine with the nearest filter: the
// output pixel (x, y) takes the source pixel at mat·(x+0.5, y+0.5), walked in
// 16.16 fixed point with the per-pixel increments PIL uses. Outside pixels stay
// black.
func affineNearest(m *Image, a [6]float64) *Image {
	out := NewImage(m.W, m.H, m.C)
	fits := func(x, y float64) bool {
		return math.Abs(x*a[0]+y*a[1]+a[2]) < 32768 && math.Abs(x*a[3]+y*a[4]+a[5]) < 32768
	}
	W, H := float64(m.W), float64(m.H)
	if !(fits(0, 0) && fits(W, H) && fits(0, H) && fits(W, 0)) {
		// PIL's floating-point fallback, for images too large for 16.16.
		xo := a[2] + a[1]*0.5 + a[0]*0.5
		yo := a[5] + a[4]*0.5 + a[3]*0.5
		for y := 0; y < m.H; y++ {
			xx, yy := xo, yo
			for x := 0; x < m.W; x++ {
				xi, yi := pilCoord(xx), pilCoord(yy)
				if xi >= 0 && xi < m.W && yi >= 0 && yi < m.H {
					copy(out.Pix[(y*m.W+x)*m.C:(y*m.W+x+1)*m.C], m.Pix[(yi*m.W+xi)*m.C:(yi*m.W+xi+1)*m.C])
				}
				xx += a[0]
				yy += a[3]
			}
			xo += a[1]
			yo += a[4]
		}
		return out
	}
	fix := func(v float64) int { return pilFloor(v*65536 + 0.5) }
	a0, a1, a3, a4 := fix(a[0]), fix(a[1]), fix(a[3]), fix(a[4])
	a2 := fix(a[2] + a[0]*0.5 + a[1]*0.5)
	a5 := fix(a[5] + a[3]*0.5 + a[4]*0.5)
	c := m.C
	for y := 0; y < m.H; y++ {
		xx, yy := a2, a5
		row := out.Pix[y*m.W*c : (y+1)*m.W*c]
		for x := 0; x < m.W; x++ {
			xi := xx >> 16
			if xi >= 0 && xi < m.W {
				yi := yy >> 16
				if yi >= 0 && yi < m.H {
					copy(row[x*c:(x+1)*c], m.Pix[(yi*m.W+xi)*c:(yi*m.W+xi+1)*c])
				}
			}
			xx += a0
			yy += a3
		}
		a2 += a1
		a5 += a4
	}
	return out
}

func pilCoord(v float64) int {
	if v < 0 {
		return -1
	}
	return int(v)
}

// affineBilinear is PIL's generic transform with bilinear_filter8/32RGB:
// source point mat·(x+0.5, y+0.5), skipped (black) when outside the image,
// else interpolated between the four neighbours with edge clamping and
// truncated to 8 bits.
func affineBilinear(m *Image, a [6]float64) *Image {
	out := NewImage(m.W, m.H, m.C)
	c := m.C
	W, H := float64(m.W), float64(m.H)
	clampX := func(x int) int { return min(max(x, 0), m.W-1) }
	for y := 0; y < m.H; y++ {
		yc := float64(y) + 0.5
		for x := 0; x < m.W; x++ {
			xc := float64(x) + 0.5
			xin := float64(a[0]*xc) + float64(a[1]*yc) + a[2]
			yin := float64(a[3]*xc) + float64(a[4]*yc) + a[5]
			if xin < 0 || xin >= W || yin < 0 || yin >= H {
				continue
			}
			xin -= 0.5
			yin -= 0.5
			xi, yi := pilFloor(xin), pilFloor(yin)
			dx, dy := xin-float64(xi), yin-float64(yi)
			x0, x1 := clampX(xi), clampX(xi+1)
			r0 := min(max(yi, 0), m.H-1)
			for b := 0; b < c; b++ {
				p := func(yy, xx int) float64 { return float64(m.Pix[(yy*m.W+xx)*c+b]) }
				v1 := p(r0, x0) + (p(r0, x1)-p(r0, x0))*dx
				v2 := v1
				if yi+1 >= 0 && yi+1 < m.H {
					v2 = p(yi+1, x0) + (p(yi+1, x1)-p(yi+1, x0))*dx
				}
				v1 = v1 + (v2-v1)*dy
				out.Pix[(y*m.W+x)*c+b] = uint8(v1)
			}
		}
	}
	return out
}

// Normalization is torchvision's Normalize(mean, std) after ToTensor.
type Normalization struct {
	Name      string
	Mean, Std [3]float32
}

// Normalizations of build_transform_classification's normalize argument.
var (
	NormImageNet  = Normalization{"imagenet", [3]float32{0.485, 0.456, 0.406}, [3]float32{0.229, 0.224, 0.225}}
	NormChestXray = Normalization{"chestx-ray", [3]float32{0.5056, 0.5056, 0.5056}, [3]float32{0.252, 0.252, 0.252}}
	NormNone      = Normalization{"none", [3]float32{0, 0, 0}, [3]float32{1, 1, 1}}
)

// ParseNormalization maps imagenet, chestx-ray and none to a Normalization.
func ParseNormalization(s string) (Normalization, error) {
	for _, n := range []Normalization{NormImageNet, NormChestXray, NormNone} {
		if s == n.Name {
			return n, nil
		}
	}
	return Normalization{}, fmt.Errorf("data: normalization must be imagenet, chestx-ray or none, got %q", s)
}

// Put writes m as three planes [3,H,W] of dst: ToTensor's v/255 in float32,
// then Normalize's (x - mean) / std, each step rounded to float32 as torch
// computes it. A gray image fills the three planes from its one channel.
func (n Normalization) Put(dst []float32, m *Image) {
	putPlanes(dst, m, 3)
	if n.Name == NormNone.Name {
		return
	}
	hw := m.W * m.H
	for p := 0; p < 3; p++ {
		mean, std := n.Mean[p], n.Std[p]
		plane := dst[p*hw : (p+1)*hw]
		for i, v := range plane {
			plane[i] = float32(v-mean) / std
		}
	}
}

// ClassifyTransform turns a decoded image into what the classification
// network is fed, as build_transform_classification does for one mode.
type ClassifyTransform struct {
	Mode      string // ModeTrain, ModeValid or ModeTest
	Crop      int    // crop_size: side of the network input (official 224)
	Resize    int    // resize: side of the eval resize (official 256)
	Shorter   bool   // resize the shorter side to Resize instead of squashing to Resize×Resize
	TenCrop   bool   // test mode: ten crops (test_augment); false: one center crop
	Augment   ClassifyAugment
	Normalize Normalization
}

// Transform modes, as build_transform_classification's mode argument.
const (
	ModeTrain = "train"
	ModeValid = "valid"
	ModeTest  = "test"
)

// Crops is the number of crops Apply returns: 10 in test mode with TenCrop,
// else 1.
func (t ClassifyTransform) Crops() int {
	if t.Mode == ModeTest && t.TenCrop {
		return 10
	}
	return 1
}

func (t ClassifyTransform) resize(m *Image) *Image {
	if t.Shorter {
		return ResizeShorter(m, t.Resize)
	}
	return Resize(m, t.Resize, t.Resize)
}

// Apply returns the crops of m (Crops of them, each Crop×Crop) before
// ToTensor, drawing the train-mode randomness from r.
func (t ClassifyTransform) Apply(r *rand.Rand, m *Image) ([]*Image, error) {
	switch t.Mode {
	case ModeTrain:
		a := t.Augment
		b := RandomCropBox(r, m.W, m.H, [2]float64{a.CropScale[0], a.CropScale[1]}, [2]float64{a.CropRatio[0], a.CropRatio[1]})
		out := ResizedCrop(m, b.Top, b.Left, b.H, b.W, t.Crop, t.Crop)
		if r.Float64() < a.FlipP {
			out = FlipH(out)
		}
		if a.RotateDegrees > 0 {
			interp, err := ParseInterpolation(a.RotateInterpolation)
			if err != nil {
				return nil, err
			}
			out = Rotate(out, uniform(r, -a.RotateDegrees, a.RotateDegrees), interp)
		}
		return []*Image{out}, nil
	case ModeValid:
		return []*Image{CenterCrop(t.resize(m), t.Crop, t.Crop)}, nil
	case ModeTest:
		rs := t.resize(m)
		if !t.TenCrop {
			return []*Image{CenterCrop(rs, t.Crop, t.Crop)}, nil
		}
		ten, err := TenCrop(rs, t.Crop, t.Crop)
		if err != nil {
			return nil, err
		}
		return ten[:], nil
	}
	return nil, fmt.Errorf("data: classification transform mode must be train, valid or test, got %q", t.Mode)
}
