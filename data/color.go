package data

import (
	"fmt"
	"math"
)

// This file reproduces torchvision 0.14's colour adjustments on PIL images. They
// are PIL ImageEnhance operations: each blends the image with a "degenerate"
// image, out = degenerate + factor·(image − degenerate), computed in C float and
// truncated to a byte (clipped to [0,255] when the factor extrapolates). Hue goes
// through PIL's 8-bit HSV conversion. On a gray image saturation and hue change
// nothing, exactly as in PIL, because the degenerate image is the image itself
// and the HSV saturation is zero.

// blendByte is PIL's ImagingBlend for one 8-bit sample: in1 + alpha·(in2 − in1)
// in float32, truncated toward zero, clipped when alpha is outside [0,1].
func blendByte(in1, in2 uint8, alpha float32) uint8 {
	d := float32(int(in2) - int(in1))
	// The explicit conversion keeps the product rounded to float32 on its own, as
	// the C code does, instead of being fused with the addition.
	t := float32(in1) + float32(alpha*d)
	if alpha >= 0 && alpha <= 1 {
		return uint8(t)
	}
	if t <= 0 {
		return 0
	}
	if t >= 255 {
		return 255
	}
	return uint8(t)
}

// blendLUT is the table of blendByte(degenerate, v, alpha) for every v, used when
// the degenerate image is a constant.
func blendLUT(degenerate uint8, alpha float32) *[256]uint8 {
	var t [256]uint8
	for v := range t {
		t[v] = blendByte(degenerate, uint8(v), alpha)
	}
	return &t
}

func applyLUT(m *Image, t *[256]uint8) *Image {
	out := NewImage(m.W, m.H, m.C)
	for i, v := range m.Pix {
		out.Pix[i] = t[v]
	}
	return out
}

// AdjustBrightness is F.adjust_brightness on a PIL image: a blend with black.
func AdjustBrightness(m *Image, factor float64) *Image {
	return applyLUT(m, blendLUT(0, float32(factor)))
}

// AdjustContrast is F.adjust_contrast on a PIL image: a blend with a constant
// gray image whose value is the rounded mean of the image's luma (PIL "L").
func AdjustContrast(m *Image, factor float64) *Image {
	g := m.Gray()
	var sum uint64
	for _, v := range g.Pix {
		sum += uint64(v)
	}
	mean := 0.0
	if len(g.Pix) > 0 {
		mean = float64(sum) / float64(len(g.Pix))
	}
	return applyLUT(m, blendLUT(uint8(int(mean+0.5)), float32(factor)))
}

// AdjustSaturation is F.adjust_saturation on a PIL image: a blend with the image's
// luma repeated on the three channels. A gray image is returned unchanged (as a
// copy), which is what PIL computes for it.
func AdjustSaturation(m *Image, factor float64) *Image {
	if m.C == 1 {
		return m.Clone()
	}
	alpha := float32(factor)
	out := NewImage(m.W, m.H, 3)
	for i := 0; i < len(m.Pix); i += 3 {
		p := m.Pix[i : i+3 : i+3]
		l := luma(p[0], p[1], p[2])
		out.Pix[i] = blendByte(l, p[0], alpha)
		out.Pix[i+1] = blendByte(l, p[1], alpha)
		out.Pix[i+2] = blendByte(l, p[2], alpha)
	}
	return out
}

// AdjustHue is F.adjust_hue on a PIL image: convert to PIL's 8-bit HSV, add
// uint8(factor·255) to H with wrap-around (numpy's conversion truncates toward
// zero, and a negative value wraps modulo 256), convert back. factor must be in
// [−0.5, 0.5]. A gray image is returned unchanged (as a copy): its saturation is
// zero, so PIL's round trip reproduces it exactly.
func AdjustHue(m *Image, factor float64) *Image {
	if factor < -0.5 || factor > 0.5 {
		panic(fmt.Sprintf("data: AdjustHue: factor %v outside [-0.5, 0.5]", factor))
	}
	if m.C == 1 {
		return m.Clone()
	}
	shift := uint8(int(factor * 255))
	out := NewImage(m.W, m.H, 3)
	for i := 0; i < len(m.Pix); i += 3 {
		p := m.Pix[i : i+3 : i+3]
		h, s, v := rgbToHSV(p[0], p[1], p[2])
		r, g, b := hsvToRGB(h+shift, s, v)
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = r, g, b
	}
	return out
}

// clipInt8 clips an int to a byte.
func clipInt8(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// rgbToHSV is PIL's RGB→HSV conversion (colorsys formulas, every component
// scaled to 0..255 and truncated).
func rgbToHSV(r, g, b uint8) (h, s, v uint8) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	if maxc == minc {
		return 0, 0, maxc
	}
	cr := float32(maxc - minc)
	sf := cr / float32(maxc)
	rc := float32(maxc-r) / cr
	gc := float32(maxc-g) / cr
	bc := float32(maxc-b) / cr
	var hf float32
	switch {
	case r == maxc:
		hf = bc - gc
	case g == maxc:
		hf = float32(2.0 + float64(rc) - float64(bc))
	default:
		hf = float32(4.0 + float64(gc) - float64(rc))
	}
	// PIL: h = fmod(h/6.0 + 1.0, 1.0) in double, stored back into a float.
	hd := float32(math.Mod(float64(hf)/6.0+1.0, 1.0))
	return clipInt8(int(float64(hd) * 255.0)), clipInt8(int(float64(sf) * 255.0)), maxc
}

// hsvToRGB is PIL's HSV→RGB conversion.
func hsvToRGB(h, s, v uint8) (r, g, b uint8) {
	if s == 0 {
		return v, v, v
	}
	// PIL mixes float variables with double constants; each step below keeps
	// the C types (f and fs are floats, the products with 1.0 are doubles, and
	// C round() rounds halves away from zero).
	hh := float64(h) * 6.0 / 255.0
	i := int(math.Floor(hh))
	f := float32(hh - float64(i))
	fs := float32(float64(s) / 255.0)
	fv := float64(v)
	p := clipInt8(int(math.Round(fv * (1.0 - float64(fs)))))
	q := clipInt8(int(math.Round(fv * (1.0 - float64(fs*f)))))
	t := clipInt8(int(math.Round(fv * (1.0 - float64(fs)*(1.0-float64(f))))))
	switch i % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	default:
		return v, p, q
	}
}
