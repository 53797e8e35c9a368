package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
)

// ErrFormat reports a file that is neither PNG nor JPEG.
var ErrFormat = errors.New("not a PNG or JPEG file")

var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	jpegMagic = []byte{0xff, 0xd8, 0xff}
)

// DecodeFile reads the PNG or JPEG file at path (a regular file, within
// ReadTimeout: see ReadFile) and decodes it; see Decode.
func DecodeFile(path string) (*Image, error) {
	b, err := ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: read image: %w", err) // *PathError names the path
	}
	return Decode(b, path)
}

// Decode decodes a PNG or JPEG image held in b; name (usually the file path)
// prefixes every error. The result follows PIL's Image.open(...).convert('RGB'),
// which is how the official DiRA loader reads images:
//
//   - 8-bit gray, palette, RGB: the values as stored. An image whose three
//     channels are equal everywhere is returned with one channel (C=1).
//   - alpha (gray+alpha, RGBA, palette with transparency): the alpha channel is
//     dropped and the stored colour kept, as convert('RGB') does; pixels are not
//     composited onto a background.
//   - 16-bit samples: scaled to 8 bits as round(v·255/65535). This deliberately
//     differs from PIL, whose convert('RGB') of a 16-bit gray PNG ("I;16")
//     clips every value above 255 to white, which destroys the image.
//   - JPEG: decoded by Go's image/jpeg, whose IDCT and chroma upsampling are not
//     bit-identical to libjpeg's; values may differ from PIL's by a few levels.
func Decode(b []byte, name string) (*Image, error) {
	var (
		img image.Image
		err error
	)
	switch {
	case bytes.HasPrefix(b, pngMagic):
		// The fast path covers the usual layouts; image/png decodes the rest, and
		// also re-reads any file the fast path rejects, so a file either decoder
		// accepts is accepted and errors come in image/png's words.
		if m, ferr := decodePNGFast(b); ferr == nil {
			return m, nil
		}
		if err := checkPNGSize(b); err != nil {
			return nil, fmt.Errorf("data: decode %s: %w", name, err)
		}
		img, err = png.Decode(bytes.NewReader(b))
	case bytes.HasPrefix(b, jpegMagic):
		if err := checkJPEGSize(b); err != nil {
			return nil, fmt.Errorf("data: decode %s: %w", name, err)
		}
		img, err = jpeg.Decode(bytes.NewReader(b))
	case len(b) == 0:
		return nil, fmt.Errorf("data: decode %s: empty file: %w", name, ErrFormat)
	default:
		return nil, fmt.Errorf("data: decode %s: %w", name, ErrFormat)
	}
	if err != nil {
		return nil, fmt.Errorf("data: decode %s: %w", name, err)
	}
	m := FromImage(img)
	if m.W == 0 || m.H == 0 {
		return nil, fmt.Errorf("data: decode %s: empty image (%dx%d)", name, m.W, m.H)
	}
	return m, nil
}

// FromImage converts any image.Image to an Image with the rules of Decode.
func FromImage(img image.Image) *Image {
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	switch src := img.(type) {
	case *image.Gray:
		out := NewImage(w, h, 1)
		for y := 0; y < h; y++ {
			copy(out.Pix[y*w:(y+1)*w], src.Pix[y*src.Stride:y*src.Stride+w])
		}
		return out
	case *image.Gray16:
		out := NewImage(w, h, 1)
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride : y*src.Stride+2*w]
			for x := 0; x < w; x++ {
				out.Pix[y*w+x] = to8(uint32(row[2*x])<<8 | uint32(row[2*x+1]))
			}
		}
		return out
	case *image.RGBA:
		// Go's PNG decoder returns RGBA only for opaque images, where premultiplied
		// and straight values coincide.
		return squeezeGray(fromRGBA8(src.Pix, src.Stride, w, h))
	case *image.NRGBA:
		return squeezeGray(fromRGBA8(src.Pix, src.Stride, w, h))
	case *image.RGBA64:
		return squeezeGray(fromRGBA16(src.Pix, src.Stride, w, h))
	case *image.NRGBA64:
		return squeezeGray(fromRGBA16(src.Pix, src.Stride, w, h))
	case *image.Paletted:
		// Palette entries with transparency are color.NRGBA: keep their stored
		// colour, as PIL's palette lookup does, instead of premultiplying.
		out := NewImage(w, h, 3)
		lut := make([][3]uint8, 256)
		for i, c := range src.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			if nc, ok := c.(color.NRGBA); ok {
				n = nc
			}
			lut[i] = [3]uint8{n.R, n.G, n.B}
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				copy(out.Pix[(y*w+x)*3:], lut[src.Pix[y*src.Stride+x]][:])
			}
		}
		return squeezeGray(out)
	}
	// YCbCr, CMYK and anything else: go through straight (non-premultiplied)
	// 16-bit colour, which drops alpha without compositing.
	out := NewImage(w, h, 3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA64Model.Convert(img.At(r.Min.X+x, r.Min.Y+y)).(color.NRGBA64)
			i := (y*w + x) * 3
			out.Pix[i], out.Pix[i+1], out.Pix[i+2] = to8(uint32(c.R)), to8(uint32(c.G)), to8(uint32(c.B))
		}
	}
	return squeezeGray(out)
}

// to8 scales a 16-bit sample to 8 bits, rounding: round(v·255/65535).
func to8(v uint32) uint8 { return uint8((v*255 + 32767) / 65535) }

func fromRGBA8(pix []uint8, stride, w, h int) *Image {
	out := NewImage(w, h, 3)
	for y := 0; y < h; y++ {
		row := pix[y*stride : y*stride+4*w]
		dst := out.Pix[y*w*3 : (y+1)*w*3]
		for x := 0; x < w; x++ {
			dst[3*x], dst[3*x+1], dst[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
		}
	}
	return out
}

func fromRGBA16(pix []uint8, stride, w, h int) *Image {
	out := NewImage(w, h, 3)
	for y := 0; y < h; y++ {
		row := pix[y*stride : y*stride+8*w]
		dst := out.Pix[y*w*3 : (y+1)*w*3]
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				dst[3*x+c] = to8(uint32(row[8*x+2*c])<<8 | uint32(row[8*x+2*c+1]))
			}
		}
	}
	return out
}

// ErrTooLarge reports an image whose header declares more pixels, or more
// decoder memory, than the decoders allow (maxPixels, maxDecodedBytes).
var ErrTooLarge = errors.New("image too large")

// sizeCheck refuses w x h images over maxPixels, or whose decoder needs
// more than maxDecodedBytes at bpp bytes per pixel.
func sizeCheck(w, h int64, bpp int64, what string) error {
	if w <= 0 || h <= 0 {
		return nil // the decoder refuses it in its own words
	}
	if w > maxPixels/h {
		return fmt.Errorf("%w (%dx%d, limit %d pixels)", ErrTooLarge, w, h, maxPixels)
	}
	if n := w * h * bpp; n > maxDecodedBytes {
		return fmt.Errorf("%w (%dx%d %s needs %d MiB to decode, limit %d MiB)", ErrTooLarge, w, h, what, n>>20, maxDecodedBytes>>20)
	}
	return nil
}

// checkPNGSize reads a PNG's IHDR (and whether a tRNS chunk precedes the
// image data) and refuses, before image/png allocates, an image whose
// pixel buffers would exceed the limits: image/png keeps 1 byte per pixel
// for gray and palette images, 2 for 16-bit gray, 4 for 8-bit colour or
// alpha (and for gray with tRNS), 8 for 16-bit colour or alpha, and twice
// that for interlaced images (the passes and the whole).
func checkPNGSize(b []byte) error {
	p := b[len(pngMagic):]
	if len(p) < 8+13 || string(p[4:8]) != "IHDR" || binary.BigEndian.Uint32(p) != 13 {
		return nil // not IHDR first: image/png refuses it
	}
	ihdr := p[8:21]
	w, h := int64(binary.BigEndian.Uint32(ihdr)), int64(binary.BigEndian.Uint32(ihdr[4:]))
	depth, ctype, interlaced := ihdr[8], ihdr[9], ihdr[12] == 1
	trns := false
	for q := p; len(q) >= 12; {
		n := int64(binary.BigEndian.Uint32(q))
		typ := string(q[4:8])
		if typ == "IDAT" || typ == "IEND" || n > int64(len(q))-12 {
			break
		}
		trns = trns || typ == "tRNS"
		q = q[12+n:]
	}
	var bpp int64
	switch {
	case ctype == pngPalette:
		bpp = 1
	case ctype == pngGray && depth == 16:
		bpp = 2
		if trns {
			bpp = 8
		}
	case ctype == pngGray:
		bpp = 1
		if trns {
			bpp = 4
		}
	case depth == 16:
		bpp = 8
	default:
		bpp = 4
	}
	what := fmt.Sprintf("%d-bit PNG of colour type %d", depth, ctype)
	if interlaced {
		bpp *= 2
		what = "interlaced " + what
	}
	return sizeCheck(w, h, bpp, what)
}

// checkJPEGSize reads a JPEG's frame header and refuses, before image/jpeg
// allocates, an image whose buffers would exceed the limits: image/jpeg
// keeps a byte per component per pixel, and a progressive JPEG also 4
// bytes per component per pixel of coefficients.
func checkJPEGSize(b []byte) error {
	w, h, comps, progressive, ok := jpegFrame(b)
	if !ok {
		return nil // no frame header found: image/jpeg refuses it
	}
	bpp, what := comps, fmt.Sprintf("JPEG with %d components", comps)
	if progressive {
		bpp += 4 * comps
		what = "progressive " + what
	}
	return sizeCheck(w, h, bpp, what)
}

// jpegFrame finds the frame header image/jpeg will use and returns the
// frame's size, component count and whether it is progressive. It walks the
// markers as image/jpeg does, with its leniency (bytes between segments
// skipped, "\xff\x00" and fill bytes ignored, restart markers passed), so
// that no frame header image/jpeg would reach is hidden from it; image/jpeg
// reads only SOF0, SOF1 and SOF2 (progressive), and refuses the others
// before allocating. ok is false when no frame header comes before the
// first scan or the end.
func jpegFrame(b []byte) (w, h, comps int64, progressive, ok bool) {
	if len(b) < 2 || b[0] != 0xff || b[1] != 0xd8 {
		return 0, 0, 0, false, false
	}
	i := 2
	for {
		if i+2 > len(b) {
			return 0, 0, 0, false, false
		}
		t0, t1 := b[i], b[i+1]
		i += 2
		for t0 != 0xff {
			if i >= len(b) {
				return 0, 0, 0, false, false
			}
			t0, t1 = t1, b[i]
			i++
		}
		m := t1
		if m == 0 {
			continue
		}
		for m == 0xff {
			if i >= len(b) {
				return 0, 0, 0, false, false
			}
			m = b[i]
			i++
		}
		if m == 0xd9 { // EOI
			return 0, 0, 0, false, false
		}
		if m >= 0xd0 && m <= 0xd7 { // RSTn
			continue
		}
		if i+2 > len(b) {
			return 0, 0, 0, false, false
		}
		n := int(b[i])<<8 + int(b[i+1]) - 2
		i += 2
		if n < 0 {
			return 0, 0, 0, false, false
		}
		switch m {
		case 0xc0, 0xc1, 0xc2:
			if i+6 > len(b) {
				return 0, 0, 0, false, false
			}
			h = int64(binary.BigEndian.Uint16(b[i+1:]))
			w = int64(binary.BigEndian.Uint16(b[i+3:]))
			return w, h, int64(b[i+5]), m == 0xc2, true
		case 0xda: // a scan before any frame header
			return 0, 0, 0, false, false
		}
		i += n
	}
}
