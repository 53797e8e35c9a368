package data

import "math"

// This file reproduces PIL's ImageFilter.GaussianBlur(radius) for 8-bit images,
// the blur of the DiRA/MoCo-v2 view augmentation. PIL does not convolve with a
// Gaussian: it approximates one with three passes of an "extended" box filter
// (Gwosdek et al., SSVM 2011), each pass a box of integer radius r with full
// weight plus the two pixels at distance r+1 with a fractional weight, in 24-bit
// fixed point, rounded to 8 bits after every pass. Three passes run along rows,
// then three along columns. Pixels beyond the border repeat the edge pixel.

// blurPasses is the number of box passes per direction PIL uses.
const blurPasses = 3

// boxRadius is PIL's _gaussian_blur_radius: the extended-box radius whose
// three-pass variance equals sigma². It computes in C float, like PIL.
func boxRadius(sigma float32) float32 {
	sigma2 := sigma * sigma / blurPasses
	bigL := float32(math.Sqrt(12.0*float64(sigma2) + 1.0))
	l := float32(math.Floor((float64(bigL) - 1.0) / 2.0))
	a := (2*l + 1) * (l*(l+1) - 3*sigma2)
	a /= 6 * (sigma2 - (l+1)*(l+1))
	return l + a
}

// GaussianBlur is PIL's image.filter(ImageFilter.GaussianBlur(radius=sigma)).
func GaussianBlur(m *Image, sigma float64) *Image {
	if sigma <= 0 || m.W == 0 || m.H == 0 {
		return m.Clone()
	}
	fr := boxRadius(float32(sigma))
	r := int(fr)
	// PIL: ww = (UINT32)(1 << 24) / (floatRadius * 2 + 1), a float division.
	ww := uint32(float32(1<<24) / (fr*2 + 1))
	fw := (uint32(1<<24) - uint32(r*2+1)*ww) / 2
	if m.C == 1 {
		out := NewImage(m.W, m.H, 1)
		blurPlane(out.Pix, m.Pix, m.W, m.H, r, ww, fw)
		return out
	}
	// Channels are independent: blur each plane separately.
	out := NewImage(m.W, m.H, m.C)
	plane := make([]uint8, m.W*m.H)
	for c := 0; c < m.C; c++ {
		for i := range plane {
			plane[i] = m.Pix[i*m.C+c]
		}
		blurPlane(plane, plane, m.W, m.H, r, ww, fw)
		for i, v := range plane {
			out.Pix[i*m.C+c] = v
		}
	}
	return out
}

// blurPlane blurs a w×h single-channel plane from src into dst (which may be
// src): three passes along rows, then, on the transposed plane, three along
// columns, as PIL does.
func blurPlane(dst, src []uint8, w, h, r int, ww, fw uint32) {
	tmp := make([]uint8, max(w, h))
	t := make([]uint8, w*h)
	for y := 0; y < h; y++ {
		row := dst[y*w : (y+1)*w]
		boxLine(tmp[:w], src[y*w:(y+1)*w], r, ww, fw)
		boxLine(row, tmp[:w], r, ww, fw)
		boxLine(tmp[:w], row, r, ww, fw)
		// Store the row transposed: column y of t (h×w becomes w×h).
		for x, v := range tmp[:w] {
			t[x*h+y] = v
		}
	}
	col := make([]uint8, h)
	for x := 0; x < w; x++ {
		line := t[x*h : (x+1)*h]
		boxLine(tmp[:h], line, r, ww, fw)
		boxLine(col, tmp[:h], r, ww, fw)
		boxLine(tmp[:h], col, r, ww, fw)
		for y, v := range tmp[:h] {
			dst[y*w+x] = v
		}
	}
}

// boxLine is one extended-box pass over a line, from src into dst (distinct):
// dst[x] = (ww·Σ_{|i|≤r} src[x+i] + fw·(src[x−r−1] + src[x+r+1]) + 2^23) >> 24,
// indexes clamped to the line, so the edge pixel repeats.
func boxLine(dst, src []uint8, r int, ww, fw uint32) {
	n := len(src)
	dst = dst[:n]
	last := n - 1
	clampAt := func(i int) uint32 {
		return uint32(src[min(max(i, 0), last)])
	}
	var acc uint32
	for i := -r; i <= r; i++ {
		acc += clampAt(i)
	}
	// Edges use clamped indexes; the middle reads directly.
	lo, hi := min(r+1, n), max(n-r-1, 0)
	if lo > hi {
		lo, hi = n, n
	}
	x := 0
	for ; x < lo; x++ {
		dst[x] = uint8((acc*ww + (clampAt(x-r-1)+clampAt(x+r+1))*fw + 1<<23) >> 24)
		acc += clampAt(x+r+1) - clampAt(x-r)
	}
	for ; x < hi; x++ {
		a, b := uint32(src[x-r-1]), uint32(src[x+r+1])
		dst[x] = uint8((acc*ww + (a+b)*fw + 1<<23) >> 24)
		acc += b - uint32(src[x-r])
	}
	for ; x < n; x++ {
		dst[x] = uint8((acc*ww + (clampAt(x-r-1)+clampAt(x+r+1))*fw + 1<<23) >> 24)
		acc += clampAt(x+r+1) - clampAt(x-r)
	}
}
