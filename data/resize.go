package data

import (
	"fmt"
	"math"
)

// This file reproduces PIL's Image.resize(size, BILINEAR) for 8-bit images, which
// is what torchvision 0.14's F.resized_crop runs on a PIL image (crop, then
// resize). PIL resamples separably with a triangle filter whose support grows
// with the downscale factor (so downscaling is antialiased), computes the weights
// in double precision, converts them to fixed point with 22 fractional bits, and
// rounds to 8 bits after the horizontal pass and again after the vertical pass.
// Reproducing those steps makes the results equal, not merely close.

// resamplePrecision is PIL's PRECISION_BITS for 8-bit images: 32 - 8 - 2.
const resamplePrecision = 22

// resampleWeights holds, for each output position, the first input index, the
// number of taps, and the fixed-point weights (ksize per output position).
type resampleWeights struct {
	first []int
	count []int
	k     []int32
	ksize int
}

// bilinearWeights computes the weights that map inSize input samples onto
// outSize output samples, the whole input being the source box.
func bilinearWeights(inSize, outSize int) resampleWeights {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1.0)
	support := 1.0 * filterScale // the triangle filter's support is 1
	ksize := int(math.Ceil(support))*2 + 1
	w := resampleWeights{
		first: make([]int, outSize),
		count: make([]int, outSize),
		k:     make([]int32, outSize*ksize),
		ksize: ksize,
	}
	tmp := make([]float64, ksize)
	ss := 1.0 / filterScale
	for xx := 0; xx < outSize; xx++ {
		center := (float64(xx) + 0.5) * scale
		// PIL rounds the window ends with a C (int) cast, which truncates toward zero.
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		n := xmax - xmin
		total := 0.0
		for x := 0; x < n; x++ {
			t := math.Abs((float64(x+xmin) - center + 0.5) * ss)
			v := 0.0
			if t < 1 {
				v = 1 - t
			}
			tmp[x] = v
			total += v
		}
		k := w.k[xx*ksize : (xx+1)*ksize]
		for x := 0; x < n; x++ {
			v := tmp[x]
			if total != 0 {
				v /= total
			}
			// Round half away from zero, as PIL's normalize_coeffs_8bpc does.
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<resamplePrecision))
			} else {
				k[x] = int32(0.5 + v*(1<<resamplePrecision))
			}
		}
		w.first[xx] = xmin
		w.count[xx] = n
	}
	return w
}

// clip8 turns a fixed-point accumulator (which already holds the rounding half)
// into a byte.
func clip8(acc int32) uint8 {
	v := acc >> resamplePrecision
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ResizedCrop returns the region of src with top-left corner (left, top) and size
// w×h, resized to outW×outH with PIL's antialiased bilinear filter. It equals
// torchvision 0.14 F.resized_crop(img, top, left, h, w, [outH, outW]) on a PIL
// image. Parts of the region outside src read as black, as PIL's crop does.
func ResizedCrop(src *Image, top, left, h, w, outH, outW int) *Image {
	if h <= 0 || w <= 0 || outH <= 0 || outW <= 0 {
		panic(fmt.Sprintf("data: ResizedCrop: empty size: crop %dx%d, output %dx%d", w, h, outW, outH))
	}
	if top < 0 || left < 0 || top+h > src.H || left+w > src.W {
		src = cropPadded(src, top, left, h, w)
		top, left = 0, 0
	}
	c := src.C
	needH := w != outW
	needV := h != outH
	if !needH && !needV {
		return cropPadded(src, top, left, h, w)
	}
	// Horizontal pass: rows top..top+h of the crop, each resampled to outW.
	var tmp *Image
	if needH {
		tmp = NewImage(outW, h, c)
		hw := bilinearWeights(w, outW)
		srcRow := func(y int) []uint8 { return src.Pix[((top+y)*src.W+left)*c : ((top+y)*src.W+left+w)*c] }
		dstRow := func(y int) []uint8 { return tmp.Pix[y*outW*c : (y+1)*outW*c] }
		y := 0
		if c == 1 {
			for ; y+4 <= h; y += 4 {
				resampleRows4(dstRow(y), dstRow(y+1), dstRow(y+2), dstRow(y+3),
					srcRow(y), srcRow(y+1), srcRow(y+2), srcRow(y+3), hw)
			}
		}
		for ; y < h; y++ {
			resampleRow(dstRow(y), srcRow(y), hw, c)
		}
	} else {
		tmp = cropPadded(src, top, left, h, w)
	}
	if !needV {
		return tmp
	}
	// Vertical pass over the horizontally resampled rows.
	out := NewImage(outW, outH, c)
	vw := bilinearWeights(h, outH)
	stride := outW * c
	acc := make([]int32, stride)
	for yy := 0; yy < outH; yy++ {
		k := vw.k[yy*vw.ksize : yy*vw.ksize+vw.count[yy]]
		for i := range acc {
			acc[i] = 1 << (resamplePrecision - 1)
		}
		for j, kv := range k {
			row := tmp.Pix[(vw.first[yy]+j)*stride : (vw.first[yy]+j+1)*stride]
			row = row[:len(acc)]
			for i, v := range row {
				acc[i] += int32(v) * kv
			}
		}
		dst := out.Pix[yy*stride : (yy+1)*stride]
		for i, a := range acc {
			dst[i] = clip8(a)
		}
	}
	return out
}

// resampleRows4 resamples four gray rows at once with the same weights, which
// halves the work per multiply-add compared with one row at a time.
func resampleRows4(d0, d1, d2, d3, s0, s1, s2, s3 []uint8, rw resampleWeights) {
	d1, d2, d3 = d1[:len(d0)], d2[:len(d0)], d3[:len(d0)]
	for xx := range d0 {
		first := rw.first[xx]
		k := rw.k[xx*rw.ksize : xx*rw.ksize+rw.count[xx]]
		n := len(k)
		i0, i1, i2, i3 := s0[first:first+n], s1[first:first+n], s2[first:first+n], s3[first:first+n]
		a0 := int32(1 << (resamplePrecision - 1))
		a1, a2, a3 := a0, a0, a0
		for i, kv := range k {
			a0 += int32(i0[i]) * kv
			a1 += int32(i1[i]) * kv
			a2 += int32(i2[i]) * kv
			a3 += int32(i3[i]) * kv
		}
		d0[xx], d1[xx], d2[xx], d3[xx] = clip8(a0), clip8(a1), clip8(a2), clip8(a3)
	}
}

// resampleRow resamples one row of c-channel pixels with precomputed weights.
func resampleRow(dst, row []uint8, rw resampleWeights, c int) {
	if c == 1 {
		for xx := range dst {
			first := rw.first[xx]
			k := rw.k[xx*rw.ksize : xx*rw.ksize+rw.count[xx]]
			in := row[first : first+len(k)]
			acc := int32(1 << (resamplePrecision - 1))
			for i, kv := range k {
				acc += int32(in[i]) * kv
			}
			dst[xx] = clip8(acc)
		}
		return
	}
	for xx := 0; xx < len(dst)/3; xx++ {
		first := rw.first[xx]
		k := rw.k[xx*rw.ksize : xx*rw.ksize+rw.count[xx]]
		in := row[3*first : 3*(first+len(k))]
		a0 := int32(1 << (resamplePrecision - 1))
		a1, a2 := a0, a0
		for i, kv := range k {
			p := in[3*i : 3*i+3 : 3*i+3]
			a0 += int32(p[0]) * kv
			a1 += int32(p[1]) * kv
			a2 += int32(p[2]) * kv
		}
		dst[3*xx], dst[3*xx+1], dst[3*xx+2] = clip8(a0), clip8(a1), clip8(a2)
	}
}

// cropPadded copies a region of src; pixels outside src are black (PIL crop).
func cropPadded(src *Image, top, left, h, w int) *Image {
	out := NewImage(w, h, src.C)
	c := src.C
	for y := 0; y < h; y++ {
		sy := top + y
		if sy < 0 || sy >= src.H {
			continue
		}
		x0, x1 := max(left, 0), min(left+w, src.W)
		if x0 >= x1 {
			continue
		}
		copy(out.Pix[(y*w+x0-left)*c:(y*w+x1-left)*c], src.Pix[(sy*src.W+x0)*c:(sy*src.W+x1)*c])
	}
	return out
}
