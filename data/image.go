package data

import (
	"fmt"
	"image"
	"image/color"
)

// Image is an 8-bit image with 1 (gray) or 3 (RGB) interleaved channels, stored
// row-major with stride W*C. It plays the role of a PIL "L" or "RGB" image in the
// reference pipeline: every augmentation works on 8-bit values and rounds between
// steps exactly where PIL does, so results match torchvision on PIL images.
//
// A gray Image stands for an RGB image whose three channels are equal (what
// PIL's convert('RGB') makes of a grayscale radiograph). Every operation in this
// package maps such an image to the same result on all three channels, so the
// pipeline keeps one channel and widens it only when batches are written.
type Image struct {
	W, H int
	C    int     // channels: 1 (gray) or 3 (RGB)
	Pix  []uint8 // len W*H*C
}

// NewImage returns a black image of the given size and channel count (1 or 3).
func NewImage(w, h, c int) *Image {
	if c != 1 && c != 3 {
		panic(fmt.Sprintf("data: NewImage: channels must be 1 or 3, got %d", c))
	}
	if w < 0 || h < 0 {
		panic(fmt.Sprintf("data: NewImage: negative size %dx%d", w, h))
	}
	return &Image{W: w, H: h, C: c, Pix: make([]uint8, w*h*c)}
}

// Clone returns a deep copy of m.
func (m *Image) Clone() *Image {
	c := *m
	c.Pix = append([]uint8(nil), m.Pix...)
	return &c
}

// Stride is the number of bytes per row.
func (m *Image) Stride() int { return m.W * m.C }

// RGB returns m with three channels: m itself when it already has three, else a
// copy whose channels repeat the gray value.
func (m *Image) RGB() *Image {
	if m.C == 3 {
		return m
	}
	out := NewImage(m.W, m.H, 3)
	for i, v := range m.Pix {
		out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = v, v, v
	}
	return out
}

// Gray returns the PIL convert('L') of m: m itself when it is already gray, else
// L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, PIL's fixed-point ITU-R 601-2 luma.
func (m *Image) Gray() *Image {
	if m.C == 1 {
		return m
	}
	out := NewImage(m.W, m.H, 1)
	for i := range out.Pix {
		p := m.Pix[3*i : 3*i+3 : 3*i+3]
		out.Pix[i] = luma(p[0], p[1], p[2])
	}
	return out
}

func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// ColorModel implements image.Image.
func (m *Image) ColorModel() color.Model {
	if m.C == 1 {
		return color.GrayModel
	}
	return color.RGBAModel
}

// Bounds implements image.Image.
func (m *Image) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }

// At implements image.Image.
func (m *Image) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return color.Gray{}
	}
	i := (y*m.W + x) * m.C
	if m.C == 1 {
		return color.Gray{Y: m.Pix[i]}
	}
	return color.RGBA{R: m.Pix[i], G: m.Pix[i+1], B: m.Pix[i+2], A: 255}
}

// FlipH returns m mirrored left to right (PIL FLIP_LEFT_RIGHT).
func FlipH(m *Image) *Image {
	out := NewImage(m.W, m.H, m.C)
	s := m.Stride()
	for y := 0; y < m.H; y++ {
		src := m.Pix[y*s : (y+1)*s]
		dst := out.Pix[y*s : (y+1)*s]
		for x := 0; x < m.W; x++ {
			copy(dst[(m.W-1-x)*m.C:(m.W-x)*m.C], src[x*m.C:(x+1)*m.C])
		}
	}
	return out
}

// isGrayRGB reports whether every pixel of an interleaved RGB buffer has R=G=B.
func isGrayRGB(pix []uint8) bool {
	for i := 0; i+2 < len(pix); i += 3 {
		if pix[i] != pix[i+1] || pix[i] != pix[i+2] {
			return false
		}
	}
	return true
}

// squeezeGray turns an RGB image whose channels are all equal into a gray one,
// which the rest of the pipeline processes three times faster with identical
// results. Other images are returned unchanged.
func squeezeGray(m *Image) *Image {
	if m.C != 3 || !isGrayRGB(m.Pix) {
		return m
	}
	out := NewImage(m.W, m.H, 1)
	for i := range out.Pix {
		out.Pix[i] = m.Pix[3*i]
	}
	return out
}
