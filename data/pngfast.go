package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// This file decodes the PNG layouts datasets actually use (non-interlaced,
// 8- or 16-bit gray, gray+alpha, RGB, RGBA, and 8-bit palette) straight into an
// Image, following the PNG specification (ISO/IEC 15948): chunks with CRC
// checks, IHDR, PLTE, the concatenated IDAT zlib stream, and the five row
// filters. Everything else (interlacing, bit depths below 8, ...) is left to
// image/png: decodePNGFast returns errPNGUnsupported and Decode falls back.

var errPNGUnsupported = errors.New("png layout not handled by the fast path")

const (
	pngGray      = 0
	pngRGB       = 2
	pngPalette   = 3
	pngGrayAlpha = 4
	pngRGBA      = 6
)

// maxPixels bounds the image size the decoders accept (a 1024×1024 radiograph
// has 2^20 pixels, a large mammogram about 2^25), so a corrupt header cannot
// make the decoder allocate gigabytes.
const maxPixels = 1 << 26

// maxDecodedBytes bounds the pixel buffers a decoder allocates for one
// image, which depend on the bytes per pixel as well as the pixel count: a
// 16-bit RGBA image of 2^26 pixels would need 512 MiB (a 522 KB file can
// declare it). 256 MiB holds every layout at 2^25 pixels and 8-bit gray, RGB
// and RGBA at 2^26. The decoded Image (at most 3 bytes per pixel) comes on
// top.
const maxDecodedBytes = 1 << 28

// maxDeflateRatio bounds how many bytes DEFLATE can produce per input byte
// (a 258-byte match costs at least two bits): a header claiming more data
// than the stream can hold is corrupt, and is rejected before allocating.
const maxDeflateRatio = 1032

// The fast path accepts a file only where image/png accepts it too, with
// the same pixels: it follows image/png's rules on chunk order and on PLTE
// and tRNS (a PLTE only right after IHDR, and not in a gray image; a tRNS
// only in the place and of the length its colour type allows; no PLTE,
// tRNS or IHDR after the image data), takes the image data from one run of
// consecutive IDAT chunks that the zlib stream fills exactly, and needs an
// empty IEND. Anything else, valid or not, goes to image/png, whose verdict
// is final (FuzzDecode checks both directions of this).
const (
	stageStart = iota
	stageIHDR
	stagePLTE
	stageTRNS
	stageIDAT  // in the run of IDAT chunks
	stageAfter // past it
)

func decodePNGFast(b []byte) (*Image, error) {
	if len(b) < 8 || string(b[:8]) != string(pngMagic) {
		return nil, errors.New("png: bad signature")
	}
	p := b[8:]
	var (
		w, h, depth, ctype int
		palette            []byte
		idat               []byte
		idatChunks         [][]byte
		ended              bool
		stage              = stageStart
	)
	for !ended {
		if len(p) < 12 {
			return nil, errors.New("png: truncated chunk")
		}
		n := int(binary.BigEndian.Uint32(p))
		if n > len(p)-12 || n < 0 || n > 0x7fffffff {
			return nil, errors.New("png: truncated chunk")
		}
		typ := string(p[4:8])
		data := p[8 : 8+n]
		if crc32.ChecksumIEEE(p[4:8+n]) != binary.BigEndian.Uint32(p[8+n:]) {
			return nil, fmt.Errorf("png: chunk %q: crc mismatch", typ)
		}
		p = p[12+n:]
		if stage == stageIDAT && typ != "IDAT" {
			stage = stageAfter
		}
		switch typ {
		case "IHDR":
			if stage != stageStart || n != 13 {
				return nil, errors.New("png: bad IHDR")
			}
			stage = stageIHDR
			w = int(binary.BigEndian.Uint32(data))
			h = int(binary.BigEndian.Uint32(data[4:]))
			depth, ctype = int(data[8]), int(data[9])
			if data[10] != 0 || data[11] != 0 {
				return nil, errors.New("png: unknown compression or filter method")
			}
			if data[12] != 0 || (depth != 8 && depth != 16) || (ctype == pngPalette && depth != 8) {
				return nil, errPNGUnsupported
			}
			switch ctype {
			case pngGray, pngRGB, pngPalette, pngGrayAlpha, pngRGBA:
			default:
				return nil, errors.New("png: bad colour type")
			}
			if w <= 0 || h <= 0 || w > maxPixels/h {
				return nil, fmt.Errorf("png: bad size %dx%d", w, h)
			}
		case "PLTE":
			if stage != stageIHDR || ctype == pngGray || ctype == pngGrayAlpha {
				return nil, errors.New("png: PLTE out of place")
			}
			if n%3 != 0 || n == 0 || n > 256*3 {
				return nil, errors.New("png: bad PLTE")
			}
			stage = stagePLTE
			if ctype == pngPalette {
				palette = data
			}
		case "tRNS":
			// The fast path drops alpha, so only the rules matter here.
			switch {
			case ctype == pngPalette && stage == stagePLTE && n <= 256:
			case (ctype == pngRGB) && (stage == stageIHDR || stage == stagePLTE) && n == 6:
			case ctype == pngGray && stage == stageIHDR && n == 2:
			default:
				return nil, errors.New("png: tRNS out of place or of a bad length")
			}
			stage = stageTRNS
		case "IDAT":
			if stage == stageAfter {
				return nil, errPNGUnsupported // image data in two runs
			}
			if stage < stageIHDR || (ctype == pngPalette && stage < stagePLTE) {
				return nil, errors.New("png: IDAT out of place")
			}
			stage = stageIDAT
			idatChunks = append(idatChunks, data)
		case "IEND":
			if stage < stageIDAT || n != 0 {
				return nil, errors.New("png: IEND out of place or not empty")
			}
			ended = true
		default:
			if typ[0]&0x20 == 0 { // an unknown critical chunk
				return nil, errPNGUnsupported
			}
		}
	}
	if ctype == pngPalette && palette == nil {
		return nil, errors.New("png: palette image without PLTE")
	}
	if len(idatChunks) == 1 {
		idat = idatChunks[0]
	} else {
		total := 0
		for _, c := range idatChunks {
			total += len(c)
		}
		idat = make([]byte, 0, total)
		for _, c := range idatChunks {
			idat = append(idat, c...)
		}
	}

	channels := 1 // gray, palette
	switch ctype {
	case pngRGB:
		channels = 3
	case pngGrayAlpha:
		channels = 2
	case pngRGBA:
		channels = 4
	}
	bpp := channels * depth / 8 // bytes per pixel
	rowBytes := w * bpp
	if h*(rowBytes+1) > maxDecodedBytes {
		return nil, errPNGUnsupported // Decode refuses it with the sizes
	}
	if h*(rowBytes+1) > len(idat)*maxDeflateRatio+64 {
		return nil, errors.New("png: not enough pixel data")
	}
	raw := make([]byte, h*(rowBytes+1))
	if err := zlibInflate(idat, raw); err != nil {
		return nil, fmt.Errorf("png: %w", err)
	}

	// Gray and RGB 8-bit rows unfilter straight into the output image.
	if depth == 8 && (ctype == pngGray || ctype == pngRGB) {
		out := NewImage(w, h, channels)
		var prev []byte
		for y := 0; y < h; y++ {
			row := raw[y*(rowBytes+1) : (y+1)*(rowBytes+1)]
			cur := out.Pix[y*rowBytes : (y+1)*rowBytes]
			if err := unfilter(row[0], cur, row[1:], prev, bpp); err != nil {
				return nil, err
			}
			prev = cur
		}
		return squeezeGray(out), nil
	}

	// Other layouts: unfilter in place in raw, then convert.
	var prev []byte
	for y := 0; y < h; y++ {
		row := raw[y*(rowBytes+1) : (y+1)*(rowBytes+1)]
		if err := unfilter(row[0], row[1:], row[1:], prev, bpp); err != nil {
			return nil, err
		}
		prev = row[1:]
	}
	outC := 3
	if ctype == pngGray || ctype == pngGrayAlpha {
		outC = 1
	}
	out := NewImage(w, h, outC)
	for y := 0; y < h; y++ {
		row := raw[y*(rowBytes+1)+1 : (y+1)*(rowBytes+1)]
		dst := out.Pix[y*w*outC : (y+1)*w*outC]
		switch {
		case ctype == pngPalette:
			for x, idx := range row {
				if int(idx)*3+2 >= len(palette) {
					return nil, errors.New("png: palette index out of range")
				}
				copy(dst[3*x:3*x+3], palette[3*int(idx):])
			}
		case depth == 8: // gray+alpha, RGBA: drop alpha
			for x := 0; x < w; x++ {
				copy(dst[x*outC:(x+1)*outC], row[x*channels:x*channels+outC])
			}
		default: // 16-bit: keep the first outC samples of each pixel, scaled
			for x := 0; x < w; x++ {
				for c := 0; c < outC; c++ {
					i := (x*channels + c) * 2
					dst[x*outC+c] = to8(uint32(row[i])<<8 | uint32(row[i+1]))
				}
			}
		}
	}
	return squeezeGray(out), nil
}

// unfilter reverses a PNG row filter: dst = src + prediction, where the
// prediction uses dst's earlier bytes and prev, the previous unfiltered row (nil
// for the first row, which PNG treats as zeros). dst and src may be the same
// slice.
func unfilter(ftype byte, dst, src, prev []byte, bpp int) error {
	n := len(dst)
	src = src[:n]
	if prev == nil {
		prev = make([]byte, n)
	}
	prev = prev[:n]
	switch ftype {
	case 0:
		copy(dst, src)
	case 1: // Sub
		copy(dst[:bpp], src)
		for i := bpp; i < n; i++ {
			dst[i] = src[i] + dst[i-bpp]
		}
	case 2: // Up
		for i := range dst {
			dst[i] = src[i] + prev[i]
		}
	case 3: // Average
		for i := 0; i < bpp; i++ {
			dst[i] = src[i] + prev[i]/2
		}
		if bpp == 1 {
			a := uint(dst[0])
			for i := 1; i < n; i++ {
				a = uint(src[i]+uint8((a+uint(prev[i]))>>1)) & 0xff
				dst[i] = uint8(a)
			}
			return nil
		}
		for i := bpp; i < n; i++ {
			dst[i] = src[i] + uint8((uint(dst[i-bpp])+uint(prev[i]))>>1)
		}
	case 4: // Paeth
		for i := 0; i < bpp; i++ {
			dst[i] = src[i] + prev[i]
		}
		if bpp == 1 {
			a, c := int(dst[0]), int(prev[0])
			for i := 1; i < n; i++ {
				b := int(prev[i])
				a = int(src[i] + paeth(a, b, c))
				dst[i] = uint8(a)
				c = b
			}
			return nil
		}
		for i := bpp; i < n; i++ {
			dst[i] = src[i] + paeth(int(dst[i-bpp]), int(prev[i]), int(prev[i-bpp]))
		}
	default:
		return fmt.Errorf("png: bad filter type %d", ftype)
	}
	return nil
}

// paeth is the Paeth predictor: whichever of left a, up b, upper-left c is
// closest to a+b−c, ties preferring a, then b.
func paeth(a, b, c int) uint8 {
	pa := b - c
	pb := a - c
	pc := pa + pb
	if pa < 0 {
		pa = -pa
	}
	if pb < 0 {
		pb = -pb
	}
	if pc < 0 {
		pc = -pc
	}
	if pa <= pb && pa <= pc {
		return uint8(a)
	}
	if pb <= pc {
		return uint8(b)
	}
	return uint8(c)
}
