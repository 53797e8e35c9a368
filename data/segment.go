package data

import (
	"math"
	"math/rand/v2"
)

// This file holds the segmentation pipeline of the DiRA benchmark code
// (BenchmarkTransferLearning Version1, dataloader.py MontgomeryDataset and
// build_transform_segmentation, on albumentations 0.4.3 and OpenCV):
//
//	image: PIL convert('RGB') -> cv2.resize(size, INTER_NEAREST)
//	mask:  PIL convert('L')   -> cv2.resize(size, INTER_NEAREST) -> mask[mask > 0] = 255
//	augmentation (train and validation splits alike), one Compose:
//	  OneOf([RandomBrightnessContrast(), RandomGamma()], p=0.3)
//	  OneOf([ElasticTransform(alpha=120, sigma=6, alpha_affine=3.6),
//	         GridDistortion(), OpticalDistortion(distort_limit=2, shift_limit=0.5)], p=0.3)
//	  RandomSizedCrop(min_max_height=(156, 224), height=224, width=224, p=0.25)
//	then image / 255 (optionally ImageNet-normalised in float64) and mask / 255.
//
// Geometric steps move the mask with the image (nearest-neighbour sampling for
// the mask, so it stays binary); intensity steps touch the image only. The
// official HorizontalFlip is commented out; it and ShiftScaleRotate are
// available with probability 0 by default. Resampling follows OpenCV's
// geometry (pixel centres, BORDER_REFLECT_101, the same maps) in floating
// point, not OpenCV's fixed-point tables, so values can differ from OpenCV by
// a level; random draws come from the sample's PCG stream, not from Python's
// and numpy's generators.

// ResizeNearestCV is cv2.resize(m, (w, h), interpolation=INTER_NEAREST):
// output pixel x takes source pixel min(floor(x·(srcW/dstW)), srcW-1), as
// OpenCV's resizeNN computes it.
func ResizeNearestCV(m *Image, w, h int) *Image {
	out := NewImage(w, h, m.C)
	ifx := 1 / (float64(w) / float64(m.W))
	ify := 1 / (float64(h) / float64(m.H))
	xs := make([]int, w)
	for x := range xs {
		xs[x] = min(int(math.Floor(float64(x)*ifx)), m.W-1)
	}
	c := m.C
	for y := 0; y < h; y++ {
		sy := min(int(math.Floor(float64(y)*ify)), m.H-1)
		src := m.Pix[sy*m.W*c : (sy+1)*m.W*c]
		dst := out.Pix[y*w*c : (y+1)*w*c]
		for x, sx := range xs {
			copy(dst[x*c:(x+1)*c], src[sx*c:(sx+1)*c])
		}
	}
	return out
}

// reflect101 maps an index outside [0, n) back inside as OpenCV's
// BORDER_REFLECT_101 does (gfedcb|abcdefgh|gfedcba).
func reflect101(i, n int) int {
	if n == 1 {
		return 0
	}
	for i < 0 || i >= n {
		if i < 0 {
			i = -i
		}
		if i >= n {
			i = 2*(n-1) - i
		}
	}
	return i
}

// sampleMap resamples m at the source coordinates (mx[i], my[i]) of every
// output pixel i (row-major, out w×h), bilinearly (rounded to 8 bits) or at
// the nearest pixel (coordinates rounded half to even, as OpenCV's remap
// does), with BORDER_REFLECT_101 outside the image.
func sampleMap(m *Image, w, h int, mx, my []float64, nearest bool) *Image {
	out := NewImage(w, h, m.C)
	c := m.C
	for i := range mx {
		x, y := mx[i], my[i]
		dst := out.Pix[i*c : (i+1)*c]
		if nearest {
			sx := reflect101(int(math.RoundToEven(x)), m.W)
			sy := reflect101(int(math.RoundToEven(y)), m.H)
			copy(dst, m.Pix[(sy*m.W+sx)*c:(sy*m.W+sx+1)*c])
			continue
		}
		fx, fy := math.Floor(x), math.Floor(y)
		ax, ay := x-fx, y-fy
		x0, y0 := int(fx), int(fy)
		x0r, x1r := reflect101(x0, m.W), reflect101(x0+1, m.W)
		y0r, y1r := reflect101(y0, m.H), reflect101(y0+1, m.H)
		for b := 0; b < c; b++ {
			p00 := float64(m.Pix[(y0r*m.W+x0r)*c+b])
			p01 := float64(m.Pix[(y0r*m.W+x1r)*c+b])
			p10 := float64(m.Pix[(y1r*m.W+x0r)*c+b])
			p11 := float64(m.Pix[(y1r*m.W+x1r)*c+b])
			v := (p00*(1-ax)+p01*ax)*(1-ay) + (p10*(1-ax)+p11*ax)*ay
			dst[b] = uint8(min(max(math.Round(v), 0), 255))
		}
	}
	return out
}

// affine2x3 is an OpenCV 2×3 affine matrix [a b c; d e f].
type affine2x3 [6]float64

// invert is cv::invertAffineTransform.
func (a affine2x3) invert() affine2x3 {
	d := a[0]*a[4] - a[1]*a[3]
	if d != 0 {
		d = 1 / d
	}
	a11, a22 := a[4]*d, a[0]*d
	a12, a21 := -a[1]*d, -a[3]*d
	b1 := -a11*a[2] - a12*a[5]
	b2 := -a21*a[2] - a22*a[5]
	return affine2x3{a11, a12, b1, a21, a22, b2}
}

// warpMaps returns the source coordinates of cv2.warpAffine(src, M, (w, h))
// without WARP_INVERSE_MAP: output pixel (x, y) reads M⁻¹·(x, y).
func warpMaps(m affine2x3, w, h int) (mx, my []float64) {
	inv := m.invert()
	mx, my = make([]float64, w*h), make([]float64, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			mx[i] = inv[0]*float64(x) + inv[1]*float64(y) + inv[2]
			my[i] = inv[3]*float64(x) + inv[4]*float64(y) + inv[5]
		}
	}
	return mx, my
}

// rotationMatrix2D is cv2.getRotationMatrix2D(center, angle degrees, scale).
func rotationMatrix2D(cx, cy, angle, scale float64) affine2x3 {
	a := angle * math.Pi / 180
	al, be := math.Cos(a)*scale, math.Sin(a)*scale
	return affine2x3{al, be, (1-al)*cx - be*cy, -be, al, be*cx + (1-al)*cy}
}

// affineFromPoints is cv2.getAffineTransform: the affine map taking the three
// points src to dst.
func affineFromPoints(src, dst [3][2]float64) affine2x3 {
	// Solve [x y 1]·[a b c]ᵀ = X and [x y 1]·[d e f]ᵀ = Y by Cramer's rule.
	det := func(m [3][3]float64) float64 {
		return m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) - m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) + m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
	}
	var A [3][3]float64
	for i := range 3 {
		A[i] = [3]float64{src[i][0], src[i][1], 1}
	}
	d := det(A)
	var out affine2x3
	for k := 0; k < 2; k++ {
		for j := 0; j < 3; j++ {
			B := A
			for i := range 3 {
				B[i][j] = dst[i][k]
			}
			out[k*3+j] = det(B) / d
		}
	}
	return out
}

// gaussianFilter is scipy.ndimage.gaussian_filter(f, sigma) on an h×w field
// (truncate 4, mode 'reflect': the edge sample repeated, dcba|abcd|dcba),
// filtering axis 0 then axis 1.
func gaussianFilter(f []float64, w, h int, sigma float64) []float64 {
	radius := int(4*sigma + 0.5)
	k := make([]float64, 2*radius+1)
	sum := 0.0
	for i := range k {
		x := float64(i - radius)
		k[i] = math.Exp(-0.5 / (sigma * sigma) * x * x)
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	reflect := func(i, n int) int {
		for i < 0 || i >= n {
			if i < 0 {
				i = -i - 1
			}
			if i >= n {
				i = 2*n - 1 - i
			}
		}
		return i
	}
	tmp := make([]float64, len(f))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			s := 0.0
			for j, kv := range k {
				s += kv * f[reflect(y+j-radius, h)*w+x]
			}
			tmp[y*w+x] = s
		}
	}
	out := make([]float64, len(f))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			s := 0.0
			for j, kv := range k {
				s += kv * tmp[y*w+reflect(x+j-radius, w)]
			}
			out[y*w+x] = s
		}
	}
	return out
}

// linspace is numpy.linspace(a, b, n) with the endpoint.
func linspace(a, b float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = a
		return out
	}
	step := (b - a) / float64(n-1)
	for i := range out {
		out[i] = float64(i)*step + a
	}
	out[n-1] = b
	return out
}

// gridAxis is one axis of albumentations 0.4.3's grid_distortion: the source
// coordinate of every output position, from cells of size//steps pixels whose
// lengths are scaled by the drawn factors.
func gridAxis(size, steps int, factors []float64) []float64 {
	step := size / steps
	out := make([]float64, size)
	prev := 0.0
	for idx, start := 0, 0; start < size; idx, start = idx+1, start+step {
		end := start + step
		var cur float64
		if end > size {
			end, cur = size, float64(size)
		} else {
			cur = prev + float64(step)*factors[min(idx, len(factors)-1)]
		}
		for i, v := range linspace(prev, cur, end-start) {
			out[start+i] = float64(float32(v))
		}
		prev = cur
	}
	return out
}

// SegmentInfo records the random choices of one segmentation augmentation.
type SegmentInfo struct {
	Intensity string  // "", "brightness_contrast" or "gamma"
	Distort   string  // "", "elastic", "grid" or "optical"
	Crop      int     // side of the RandomSizedCrop crop; 0 when not applied
	Flipped   bool    // HorizontalFlip applied
	Rotated   float64 // ShiftScaleRotate angle in degrees; 0 when not applied
}

// geometry applies one map to the image (bilinear) and the mask (nearest).
func geometry(img, mask *Image, w, h int, mx, my []float64) (*Image, *Image) {
	return sampleMap(img, w, h, mx, my, false), sampleMap(mask, w, h, mx, my, true)
}

// AugmentSegment applies the official segmentation augmentation to a
// size×size image and its mask, drawing from r. The inputs are not changed.
func AugmentSegment(r *rand.Rand, img, mask *Image, a SegmentAugment) (*Image, *Image, SegmentInfo) {
	var info SegmentInfo
	if r.Float64() < a.IntensityP {
		if r.IntN(2) == 0 {
			info.Intensity = "brightness_contrast"
			img = brightnessContrast(r, img, a)
		} else {
			info.Intensity = "gamma"
			img = randomGamma(r, img, a)
		}
	}
	if r.Float64() < a.DistortP {
		switch r.IntN(3) {
		case 0:
			info.Distort = "elastic"
			img, mask = elastic(r, img, mask, a)
		case 1:
			info.Distort = "grid"
			img, mask = gridDistortion(r, img, mask, a)
		default:
			info.Distort = "optical"
			img, mask = opticalDistortion(r, img, mask, a)
		}
	}
	if r.Float64() < a.CropP {
		img, mask, info.Crop = randomSizedCrop(r, img, mask, a)
	}
	if r.Float64() < a.FlipP {
		info.Flipped = true
		img, mask = FlipH(img), FlipH(mask)
	}
	if r.Float64() < a.ShiftScaleRotateP {
		img, mask, info.Rotated = shiftScaleRotate(r, img, mask, a)
	}
	return img, mask, info
}

// brightnessContrast is RandomBrightnessContrast: contrast factor
// 1 + U(-c, c), brightness offset U(-b, b)·255.
func brightnessContrast(r *rand.Rand, img *Image, a SegmentAugment) *Image {
	alpha := 1 + uniform(r, -a.ContrastLimit, a.ContrastLimit)
	beta := uniform(r, -a.BrightnessLimit, a.BrightnessLimit)
	return applyLUT(img, brightnessContrastLUT(alpha, beta))
}

// randomGamma is RandomGamma: gamma = randint(lo, hi) / 100.
func randomGamma(r *rand.Rand, img *Image, a SegmentAugment) *Image {
	lo, hi := int(a.GammaLimit[0]), int(a.GammaLimit[1])
	return applyLUT(img, gammaLUT(float64(lo+r.IntN(hi-lo+1))/100))
}

// elastic is ElasticTransform (approximate=False): a random affine warp of
// three points by up to ElasticAffine pixels, then a displacement field of
// uniform noise smoothed by a Gaussian of ElasticSigma and scaled by
// ElasticAlpha.
func elastic(r *rand.Rand, img, mask *Image, a SegmentAugment) (*Image, *Image) {
	w, h := img.W, img.H
	// np.float32((height, width)) // 2 and min(height, width) // 3; the rows
	// of pts1 are (center_square[0] ± s, center_square[1] ± s) taken as (x, y).
	c0, c1 := float64(h/2), float64(w/2)
	s := float64(min(h, w) / 3)
	src := [3][2]float64{{c0 + s, c1 + s}, {c0 + s, c1 - s}, {c0 - s, c1 - s}}
	dst := src
	for i := range dst {
		for j := range dst[i] {
			dst[i][j] += uniform(r, -a.ElasticAffine, a.ElasticAffine)
		}
	}
	ax, ay := warpMaps(affineFromPoints(src, dst), w, h)
	img, mask = geometry(img, mask, w, h, ax, ay)
	dx, dy := make([]float64, w*h), make([]float64, w*h)
	for i := range dx {
		dx[i] = r.Float64()*2 - 1
	}
	for i := range dy {
		dy[i] = r.Float64()*2 - 1
	}
	dx, dy = gaussianFilter(dx, w, h, a.ElasticSigma), gaussianFilter(dy, w, h, a.ElasticSigma)
	mx, my := make([]float64, w*h), make([]float64, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			mx[i] = float64(x) + float64(float32(dx[i]*a.ElasticAlpha))
			my[i] = float64(y) + float64(float32(dy[i]*a.ElasticAlpha))
		}
	}
	return geometry(img, mask, w, h, mx, my)
}

// gridDistortion is GridDistortion: GridSteps cells per side whose lengths
// are scaled by 1 + U(-GridLimit, GridLimit).
func gridDistortion(r *rand.Rand, img, mask *Image, a SegmentAugment) (*Image, *Image) {
	w, h := img.W, img.H
	fx, fy := make([]float64, a.GridSteps+1), make([]float64, a.GridSteps+1)
	for i := range fx {
		fx[i] = 1 + uniform(r, -a.GridLimit, a.GridLimit)
	}
	for i := range fy {
		fy[i] = 1 + uniform(r, -a.GridLimit, a.GridLimit)
	}
	xs, ys := gridAxis(w, a.GridSteps, fx), gridAxis(h, a.GridSteps, fy)
	mx, my := make([]float64, w*h), make([]float64, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			mx[y*w+x], my[y*w+x] = xs[x], ys[y]
		}
	}
	return geometry(img, mask, w, h, mx, my)
}

// opticalDistortion is OpticalDistortion: radial coefficient
// k = U(-OpticalLimit, OpticalLimit) and a principal point shifted by
// round(U(-OpticalShift, OpticalShift)) pixels.
func opticalDistortion(r *rand.Rand, img, mask *Image, a SegmentAugment) (*Image, *Image) {
	k := float64(float32(uniform(r, -a.OpticalLimit, a.OpticalLimit)))
	sx := math.RoundToEven(uniform(r, -a.OpticalShift, a.OpticalShift))
	sy := math.RoundToEven(uniform(r, -a.OpticalShift, a.OpticalShift))
	mx, my := opticalMaps(img.W, img.H, k, sx, sy)
	return geometry(img, mask, img.W, img.H, mx, my)
}

// randomSizedCrop is RandomSizedCrop(min_max_height=(min, size), size, size):
// a square crop of side randint(min, size) at a uniform position, resized
// back (linear for the image, nearest for the mask). It returns the side.
func randomSizedCrop(r *rand.Rand, img, mask *Image, a SegmentAugment) (*Image, *Image, int) {
	w, h := img.W, img.H
	lo := min(max(1, int(math.Round(float64(h)*a.CropMinFraction))), h)
	ch := lo + r.IntN(h-lo+1)
	cw := min(ch, w) // w2h_ratio 1
	hs, ws := r.Float64(), r.Float64()
	y1, x1 := int(float64(h-ch)*hs), int(float64(w-cw)*ws)
	return resizeLinearCV(cropPadded(img, y1, x1, ch, cw), w, h), ResizeNearestCV(cropPadded(mask, y1, x1, ch, cw), w, h), ch
}

// shiftScaleRotate is ShiftScaleRotate: rotation U(-RotateLimit, RotateLimit)
// degrees and scale 1 + U(-ScaleLimit, ScaleLimit) about the centre, shift
// U(-ShiftLimit, ShiftLimit) of each side. It returns the angle.
func shiftScaleRotate(r *rand.Rand, img, mask *Image, a SegmentAugment) (*Image, *Image, float64) {
	w, h := img.W, img.H
	angle := uniform(r, -a.RotateLimit, a.RotateLimit)
	scale := uniform(r, 1-a.ScaleLimit, 1+a.ScaleLimit)
	dx := uniform(r, -a.ShiftLimit, a.ShiftLimit)
	dy := uniform(r, -a.ShiftLimit, a.ShiftLimit)
	m := rotationMatrix2D(float64(w)/2, float64(h)/2, angle, scale)
	m[2] += dx * float64(w)
	m[5] += dy * float64(h)
	mx, my := warpMaps(m, w, h)
	img, mask = geometry(img, mask, w, h, mx, my)
	return img, mask, angle
}

// opticalMaps is albumentations 0.4.3's optical_distortion maps:
// cv2.initUndistortRectifyMap with camera fx = fy = width, principal point
// (w/2 + dx, h/2 + dy), distortion (k, k, 0, 0, 0), and OpenCV's default new
// camera matrix, whose principal point is the pixel centre ((w-1)/2, (h-1)/2).
func opticalMaps(w, h int, k, dx, dy float64) (mx, my []float64) {
	f := float64(float32(w))
	u0, v0 := float64(float32(float64(w)*0.5+dx)), float64(float32(float64(h)*0.5+dy))
	cx, cy := float64(w-1)*0.5, float64(h-1)*0.5
	mx, my = make([]float64, w*h), make([]float64, w*h)
	for v := 0; v < h; v++ {
		for u := 0; u < w; u++ {
			x, y := (float64(u)-cx)/f, (float64(v)-cy)/f
			r2 := x*x + y*y
			kr := 1 + (k*r2+k)*r2
			mx[v*w+u] = f*x*kr + u0
			my[v*w+u] = f*y*kr + v0
		}
	}
	return mx, my
}

// resizeLinearCV is cv2.resize(m, (w, h), INTER_LINEAR): bilinear with pixel
// centres aligned (source x = (x+0.5)·scale - 0.5), edge samples repeated.
func resizeLinearCV(m *Image, w, h int) *Image {
	sx, sy := float64(m.W)/float64(w), float64(m.H)/float64(h)
	mx, my := make([]float64, w*h), make([]float64, w*h)
	for y := 0; y < h; y++ {
		fy := min(max((float64(y)+0.5)*sy-0.5, 0), float64(m.H-1))
		for x := 0; x < w; x++ {
			mx[y*w+x] = min(max((float64(x)+0.5)*sx-0.5, 0), float64(m.W-1))
			my[y*w+x] = fy
		}
	}
	return sampleMap(m, w, h, mx, my, false)
}

// brightnessContrastLUT is albumentations 0.4.3's uint8 brightness_contrast_adjust
// with brightness_by_max: lut = clip(i·alpha + beta·255, 0, 255) in float32,
// truncated to uint8.
func brightnessContrastLUT(alpha, beta float64) *[256]uint8 {
	var lut [256]uint8
	a, b := float32(alpha), float32(beta*255)
	for i := range lut {
		v := float32(i)
		if alpha != 1 {
			v *= a
		}
		if beta != 0 {
			v += b
		}
		lut[i] = uint8(min(max(v, 0), 255))
	}
	return &lut
}

// gammaLUT is albumentations 0.4.3's uint8 gamma_transform: 255·(i/255)^(1/(γ+1e-7)),
// truncated to uint8 (0.4.3 raises to the inverse of gamma).
func gammaLUT(gamma float64) *[256]uint8 {
	var lut [256]uint8
	inv := 1.0 / (gamma + 1e-7)
	for i := range lut {
		lut[i] = uint8(math.Pow(float64(i)*(1.0/255), inv) * 255)
	}
	return &lut
}

// PutSegmentImage writes m as [3,H,W] float32 planes of dst the way
// MontgomeryDataset does: np.array(image) / 255 in float64, ImageNet
// normalisation (im - mean) / std in float64 when imagenet is set, then
// astype('float32').
func PutSegmentImage(dst []float32, m *Image, imagenet bool) {
	hw := m.W * m.H
	mean := [3]float64{0.485, 0.456, 0.406}
	std := [3]float64{0.229, 0.224, 0.225}
	for p := 0; p < 3; p++ {
		plane := dst[p*hw : (p+1)*hw]
		for i := range plane {
			v := m.Pix[i*m.C+min(p, m.C-1)]
			x := float64(v) / 255
			if imagenet {
				x = (x - mean[p]) / std[p]
			}
			plane[i] = float32(x)
		}
	}
}

// PutMask writes a 0/255 mask as 0/1 float32 values (MontgomeryDataset's mask / 255).
func PutMask(dst []float32, m *Image) {
	for i := range dst {
		if m.Pix[i*m.C] > 0 {
			dst[i] = 1
		} else {
			dst[i] = 0
		}
	}
}
