package data

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"dira/internal/memtest"
)

// pchunk is one PNG chunk, for rearranging files chunk by chunk.
type pchunk struct {
	typ  string
	data []byte
}

// splitPNG parses a well-formed PNG into its chunks.
func splitPNG(t *testing.T, b []byte) []pchunk {
	t.Helper()
	var out []pchunk
	p := b[len(pngMagic):]
	for len(p) >= 12 {
		n := int(binary.BigEndian.Uint32(p))
		out = append(out, pchunk{string(p[4:8]), slices.Clone(p[8 : 8+n])})
		p = p[12+n:]
	}
	return out
}

// joinPNG writes chunks as a PNG file with correct CRCs.
func joinPNG(cs []pchunk) []byte {
	out := bytes.NewBuffer(slices.Clone(pngMagic))
	for _, c := range cs {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(c.data)))
		out.Write(n[:])
		out.WriteString(c.typ)
		out.Write(c.data)
		binary.BigEndian.PutUint32(n[:], crc32.ChecksumIEEE(append([]byte(c.typ), c.data...)))
		out.Write(n[:])
	}
	return out.Bytes()
}

// edit returns cs with f applied to a copy.
func edit(cs []pchunk, f func([]pchunk) []pchunk) []pchunk {
	return f(slices.Clone(cs))
}

func insertAt(cs []pchunk, i int, c ...pchunk) []pchunk { return slices.Insert(cs, i, c...) }

func indexOf(cs []pchunk, typ string) int {
	return slices.IndexFunc(cs, func(c pchunk) bool { return c.typ == typ })
}

// TestPNGValidityAgreesWithImagePNG: a file Decode accepts is one image/png
// accepts, with the same pixels, and the other way round (issue 13 item
// 11: the fast path accepted an invalid tRNS, a PLTE in a gray image and
// chunks out of order).
func TestPNGValidityAgreesWithImagePNG(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	gray := splitPNG(t, rawPNG{w: 5, h: 4, ctype: pngGray, depth: 8, rows: randomRows(r, 5, 4, 1)}.encode(t))
	rgba := splitPNG(t, rawPNG{w: 5, h: 4, ctype: pngRGBA, depth: 8, rows: randomRows(r, 5, 4, 4)}.encode(t))
	rgb := splitPNG(t, rawPNG{w: 5, h: 4, ctype: pngRGB, depth: 16, rows: randomRows(r, 5, 4, 6)}.encode(t))
	pal := splitPNG(t, rawPNG{w: 5, h: 4, ctype: pngPalette, depth: 8, rows: [][]byte{{0, 1, 2, 1, 0}, {1, 1, 1, 1, 1}, {2, 0, 2, 0, 2}, {0, 0, 0, 0, 0}},
		palette: []byte{10, 20, 30, 40, 50, 60, 70, 80, 90}}.encode(t))
	split := splitPNG(t, rawPNG{w: 5, h: 4, ctype: pngGray, depth: 8, rows: randomRows(r, 5, 4, 1), idatSplit: 7}.encode(t))
	plte := pchunk{"PLTE", []byte{1, 2, 3, 4, 5, 6}}
	text := pchunk{"tEXt", []byte("Comment\x00hello")}
	for _, tc := range []struct {
		name  string
		cs    []pchunk
		valid bool
	}{
		{"gray", gray, true},
		{"gray_trns_2", edit(gray, func(c []pchunk) []pchunk { return insertAt(c, 1, pchunk{"tRNS", []byte{0, 7}}) }), true},
		{"gray_trns_6", edit(gray, func(c []pchunk) []pchunk { return insertAt(c, 1, pchunk{"tRNS", make([]byte, 6)}) }), false},
		{"gray_trns_after_idat", edit(gray, func(c []pchunk) []pchunk { return insertAt(c, len(c)-1, pchunk{"tRNS", []byte{0, 7}}) }), false},
		{"gray_plte", edit(gray, func(c []pchunk) []pchunk { return insertAt(c, 1, plte) }), false},
		{"gray_two_ihdr", edit(gray, func(c []pchunk) []pchunk { return insertAt(c, 1, c[0]) }), false},
		{"gray_ihdr_not_first", edit(gray, func(c []pchunk) []pchunk { return insertAt(c[1:2], 0, text, c[0], c[2]) }), false},
		{"gray_iend_with_data", edit(gray, func(c []pchunk) []pchunk { c[len(c)-1] = pchunk{"IEND", []byte{1}}; return c }), false},
		{"gray_text_anywhere", edit(gray, func(c []pchunk) []pchunk { return insertAt(insertAt(c, 1, text), 3, text) }), true},
		{"gray_trailing_zlib_bytes", edit(gray, func(c []pchunk) []pchunk {
			i := indexOf(c, "IDAT")
			c[i] = pchunk{"IDAT", append(slices.Clone(c[i].data), 0, 0, 0)}
			return c
		}), true}, // image/png's reader has read them ahead: it never sees them
		{"split_idat", split, true},
		{"split_idat_interrupted", edit(split, func(c []pchunk) []pchunk { return insertAt(c, indexOf(c, "IDAT")+1, text) }), false},
		{"rgba_trns", edit(rgba, func(c []pchunk) []pchunk { return insertAt(c, 1, pchunk{"tRNS", make([]byte, 6)}) }), false},
		{"rgba_plte", edit(rgba, func(c []pchunk) []pchunk { return insertAt(c, 1, plte) }), true},
		{"rgb16_plte_trns", edit(rgb, func(c []pchunk) []pchunk { return insertAt(c, 1, plte, pchunk{"tRNS", make([]byte, 6)}) }), true},
		{"rgb16_trns_before_plte", edit(rgb, func(c []pchunk) []pchunk { return insertAt(c, 1, pchunk{"tRNS", make([]byte, 6)}, plte) }), false},
		{"rgb16_plte_after_idat", edit(rgb, func(c []pchunk) []pchunk { return insertAt(c, len(c)-1, plte) }), false},
		{"rgb16_trns_length_2", edit(rgb, func(c []pchunk) []pchunk { return insertAt(c, 1, pchunk{"tRNS", make([]byte, 2)}) }), false},
		{"palette", pal, true},
		{"palette_trns", edit(pal, func(c []pchunk) []pchunk { return insertAt(c, 2, pchunk{"tRNS", []byte{0, 128}}) }), true},
		{"palette_trns_before_plte", edit(pal, func(c []pchunk) []pchunk { return insertAt(c, 1, pchunk{"tRNS", []byte{0, 128}}) }), false},
		{"palette_idat_before_plte", edit(pal, func(c []pchunk) []pchunk {
			i := indexOf(c, "IDAT")
			return append([]pchunk{c[0], c[i], c[1]}, c[i+1:]...)
		}), false},
		{"palette_plte_twice", edit(pal, func(c []pchunk) []pchunk { return insertAt(c, 2, c[1]) }), false},
		{"palette_index_out_of_range", edit(pal, func(c []pchunk) []pchunk { c[1] = pchunk{"PLTE", c[1].data[:6]}; return c }), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := joinPNG(tc.cs)
			std, serr := png.Decode(bytes.NewReader(b))
			if (serr == nil) != tc.valid {
				t.Fatalf("image/png says %v; the case expects valid=%v", serr, tc.valid)
			}
			m, err := Decode(b, "case.png")
			if (err == nil) != (serr == nil) {
				t.Fatalf("Decode: %v; image/png: %v", err, serr)
			}
			if err == nil && !bytes.Equal(m.Pix, FromImage(std).Pix) {
				t.Fatal("Decode's pixels differ from image/png's")
			}
		})
	}
}

// zeroPNG writes a w x h PNG of zeros of the given colour type and depth,
// streaming the rows through zlib (a 16-bit RGBA 8192x8192 image of zeros
// is about 520 KB).
func zeroPNG(t testing.TB, w, h, ctype, depth int) []byte {
	chans := map[int]int{pngGray: 1, pngRGB: 3, pngPalette: 1, pngGrayAlpha: 2, pngRGBA: 4}[ctype]
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	row := make([]byte, 1+w*chans*depth/8)
	for range h {
		zw.Write(row)
	}
	zw.Close()
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = byte(depth), byte(ctype)
	return joinPNG([]pchunk{{"IHDR", ihdr}, {"IDAT", z.Bytes()}, {"IEND", nil}})
}

// TestDecodeBoundsDecodedBytes: the limit is on the bytes a decoder needs,
// not only on pixels (issue 13 item 14: a 522 KB 16-bit RGBA 8192x8192 PNG
// cost about 960 MB).
func TestDecodeBoundsDecodedBytes(t *testing.T) {
	big := zeroPNG(t, 8192, 8192, pngRGBA, 16)
	t.Logf("16-bit RGBA 8192x8192: %d bytes", len(big))
	_, err := Decode(big, "big.png")
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "big.png") || !strings.Contains(err.Error(), "512 MiB to decode, limit 256 MiB") {
		t.Fatalf("error %v, want ErrTooLarge naming big.png and the sizes", err)
	}
	// The same pixel count in 8-bit gray is fine to decode.
	m, err := Decode(zeroPNG(t, 8192, 8192, pngGray, 8), "gray.png")
	if err != nil || m.W != 8192 || m.C != 1 {
		t.Fatalf("8-bit gray 8192x8192: %v", err)
	}
	// A progressive JPEG header of 8192x8192 in three components needs
	// 15 bytes per pixel in image/jpeg.
	w, h, comps, prog, ok := jpegFrame(progressiveHeader(8192, 8192))
	if !ok || w != 8192 || h != 8192 || comps != 3 || !prog {
		t.Fatalf("jpegFrame: %d %d %d %v %v", w, h, comps, prog, ok)
	}
	if _, err := Decode(progressiveHeader(8192, 8192), "big.jpg"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("progressive JPEG: %v, want ErrTooLarge", err)
	}
	// Bytes between segments, which image/jpeg skips, do not hide the frame.
	hdr := progressiveHeader(8192, 8192)
	junk := append(append(slices.Clone(hdr[:8]), "junk\xff\x00\xff\xff"...), hdr[8:]...)
	if c, err := jpeg.DecodeConfig(bytes.NewReader(junk)); err != nil || c.Width != 8192 {
		t.Fatalf("image/jpeg reads the junk header as %+v, %v", c, err)
	}
	if _, err := Decode(junk, "junk.jpg"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("progressive JPEG with junk before its frame: %v, want ErrTooLarge", err)
	}
}

// progressiveHeader is the start of a progressive (SOF2) JPEG of w x h
// in three components: its frame header and an empty first scan header.
func progressiveHeader(w, h int) []byte {
	b := []byte{0xff, 0xd8, 0xff, 0xe0, 0, 4, 'J', 'F'} // SOI, a short APP0
	sof := []byte{0xff, 0xc2, 0, 17, 8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1}
	sos := []byte{0xff, 0xda, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 0, 0}
	return append(append(append(b, sof...), sos...), 0xff, 0xd9)
}

// TestBigPNGMemory: refusing the 16-bit RGBA 8192x8192 PNG takes little
// memory (measured in a child process).
func TestBigPNGMemory(t *testing.T) {
	if memtest.Child(t) {
		_, err := DecodeFile(os.Getenv("DIRA_TEST_BIG_PNG"))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
		return
	}
	p := filepath.Join(t.TempDir(), "big.png")
	if err := os.WriteFile(p, zeroPNG(t, 8192, 8192, pngRGBA, 16), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DIRA_TEST_BIG_PNG", p)
	peak := memtest.PeakRSS(t)
	t.Logf("peak RSS while refusing a 16-bit RGBA 8192x8192 PNG: %s", memtest.MB(peak))
	if peak > 200<<20 {
		t.Fatalf("peak RSS %s, want under 200 MB", memtest.MB(peak))
	}
}

// TestReadListBOM: a UTF-8 byte order mark is not part of the first file
// name (issue 13 item 14).
func TestReadListBOM(t *testing.T) {
	e, err := ReadList(strings.NewReader("\ufeffa.png 1 0\r\nb.png 0 1\n"), "l.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(e) != 2 || e[0].File != "a.png" || e[1].File != "b.png" || !slices.Equal(e[0].Labels, []uint8{1, 0}) {
		t.Fatalf("entries %+v", e)
	}
}

// FuzzDecode checks that Decode never panics, names the file in errors, and
// agrees with image/png on PNGs: it accepts exactly what image/png accepts
// (but images over the size limits), with the same pixels.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"in_gray.png", "in_rgb.png", "rgb_view.png"} {
		b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, "fuzz.png")
		if err != nil && !strings.Contains(err.Error(), "fuzz.png") {
			t.Errorf("error %q does not name the file", err)
		}
		if err == nil && len(m.Pix) != m.W*m.H*m.C {
			t.Fatalf("bad image %dx%dx%d with %d bytes", m.W, m.H, m.C, len(m.Pix))
		}
		if !bytes.HasPrefix(b, pngMagic) {
			return
		}
		if c, cerr := png.DecodeConfig(bytes.NewReader(b)); cerr == nil && c.Width*c.Height > 1<<22 {
			return // too slow to decode twice at every step
		}
		std, serr := png.Decode(bytes.NewReader(b))
		switch {
		case err == nil && serr != nil:
			t.Fatalf("Decode accepts what image/png refuses (%v)", serr)
		case err != nil && serr == nil && !errors.Is(err, ErrTooLarge):
			t.Fatalf("Decode refuses what image/png accepts: %v", err)
		case err == nil && !bytes.Equal(FromImage(std).Pix, m.Pix):
			t.Fatal("Decode differs from image/png")
		}
	})
}

// FuzzDecodeJPEG checks that Decode never panics on JPEG input and agrees
// with image/jpeg (but images over the size limits).
func FuzzDecodeJPEG(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, m := range []image.Image{image.NewGray(image.Rect(0, 0, 9, 7)), image.NewRGBA(image.Rect(0, 0, 16, 8)), image.NewCMYK(image.Rect(0, 0, 8, 8))} {
		b := m.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				m.(interface{ Set(int, int, color.Color) }).Set(x, y, color.RGBA{uint8(r.IntN(256)), uint8(x * 20), uint8(y * 30), 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 80}); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(progressiveHeader(64, 48))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, "fuzz.jpg")
		if err != nil && !strings.Contains(err.Error(), "fuzz.jpg") {
			t.Errorf("error %q does not name the file", err)
		}
		if !bytes.HasPrefix(b, jpegMagic) {
			return
		}
		if c, cerr := jpeg.DecodeConfig(bytes.NewReader(b)); cerr == nil && c.Width*c.Height > 1<<22 {
			return
		}
		std, serr := jpeg.Decode(bytes.NewReader(b))
		switch {
		case (err == nil) != (serr == nil) && !errors.Is(err, ErrTooLarge):
			t.Fatalf("Decode: %v; image/jpeg: %v", err, serr)
		case err == nil && !bytes.Equal(FromImage(std).Pix, m.Pix):
			t.Fatal("Decode differs from image/jpeg")
		}
	})
}

// FuzzInflate: the DEFLATE fast path and compress/zlib agree on every
// stream: both accept it with the same bytes, or both refuse it.
func FuzzInflate(f *testing.F) {
	for _, level := range []int{zlib.NoCompression, zlib.BestSpeed, zlib.DefaultCompression, zlib.HuffmanOnly} {
		var b bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&b, level)
		zw.Write([]byte(strings.Repeat("abcabcabd", 40) + "xyz"))
		zw.Close()
		f.Add(b.Bytes(), uint16(363))
	}
	f.Fuzz(func(t *testing.T, in []byte, size uint16) {
		// compress/zlib's verdict: the whole of in is one stream.
		br := bytes.NewReader(in)
		var std []byte
		zr, serr := zlib.NewReader(br)
		if serr == nil {
			std, serr = io.ReadAll(io.LimitReader(zr, 1<<20))
			if serr == nil && br.Len() != 0 {
				serr = errors.New("bytes after the stream")
			}
		}
		n := int(size)
		if serr == nil {
			n = len(std)
		}
		out := make([]byte, n)
		err := zlibInflate(in, out)
		switch {
		case err == nil && serr != nil:
			t.Fatalf("fast path accepts what compress/zlib refuses (%v)", serr)
		case err != nil && serr == nil:
			t.Fatalf("fast path refuses what compress/zlib accepts: %v", err)
		case err == nil && !bytes.Equal(out, std):
			t.Fatal("fast path output differs from compress/zlib's")
		}
	})
}

// FuzzReadList: list parsing never panics, and every entry it returns has
// a file name free of white space and the same number of labels as the
// others; a byte order mark at the start of the file is not part of the
// first name (one anywhere else is an ordinary character, as in Python).
func FuzzReadList(f *testing.F) {
	f.Add([]byte("a.png 1 0\nb.png 0 1\n"))
	f.Add([]byte("\ufeffimages/x.png,1\r\n\r\ny.png,0\n"))
	f.Add([]byte("p.png 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := ReadList(bytes.NewReader(b), "l.txt"); err == nil {
			for _, x := range e {
				if x.File == "" || strings.ContainsAny(x.File, " \t\r\n") || len(x.Labels) != len(e[0].Labels) {
					t.Fatalf("entry %+v", x)
				}
			}
			if rest, ok := bytes.CutPrefix(b, utf8BOM); ok {
				if e2, err := ReadList(bytes.NewReader(rest), "l.txt"); err != nil || !reflect.DeepEqual(e, e2) {
					t.Fatalf("with the byte order mark %+v, without it %+v (%v)", e, e2, err)
				}
			}
		} else if !strings.Contains(err.Error(), "l.txt") {
			t.Fatalf("error %q does not name the list", err)
		}
		for _, format := range []string{ListSpaces, ListComma} {
			if e, err := ReadLabelList(bytes.NewReader(b), "l.txt", format, 1); err == nil {
				for _, x := range e {
					if len(x.Labels) != 1 {
						t.Fatalf("entry %+v", x)
					}
				}
			}
			ReadClassList(bytes.NewReader(b), "l.txt", format, 3)
		}
	})
}
