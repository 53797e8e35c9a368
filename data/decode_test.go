package data

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawPNG writes a PNG with any colour type and depth and chosen row filters,
// which image/png's encoder cannot do (it never writes gray+alpha, and picks
// filters itself). rows are unfiltered pixel bytes; filters[y%len] is applied
// to row y. idatSplit > 0 splits the zlib stream into IDAT chunks of that size.
type rawPNG struct {
	w, h, ctype, depth int
	rows               [][]byte
	filters            []byte
	palette            []byte
	trns               []byte
	level              int
	idatSplit          int
}

func (p rawPNG) encode(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	out.Write(pngMagic)
	chunk := func(typ string, data []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(data)))
		out.Write(n[:])
		out.WriteString(typ)
		out.Write(data)
		binary.BigEndian.PutUint32(n[:], crc32.ChecksumIEEE(append([]byte(typ), data...)))
		out.Write(n[:])
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, uint32(p.w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(p.h))
	ihdr[8], ihdr[9] = byte(p.depth), byte(p.ctype)
	chunk("IHDR", ihdr)
	if p.palette != nil {
		chunk("PLTE", p.palette)
	}
	if p.trns != nil {
		chunk("tRNS", p.trns)
	}
	bpp := max(1, len(p.rows[0])/p.w)
	var raw []byte
	prev := make([]byte, len(p.rows[0]))
	for y, row := range p.rows {
		f := byte(0)
		if len(p.filters) > 0 {
			f = p.filters[y%len(p.filters)]
		}
		raw = append(raw, f)
		for i := range row {
			var a, b, c int
			if i >= bpp {
				a, c = int(row[i-bpp]), int(prev[i-bpp])
			}
			b = int(prev[i])
			pred := 0
			switch f {
			case 1:
				pred = a
			case 2:
				pred = b
			case 3:
				pred = (a + b) / 2
			case 4:
				pred = int(paeth(a, b, c))
			}
			raw = append(raw, row[i]-byte(pred))
		}
		prev = row
	}
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, p.level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	zw.Close()
	data := z.Bytes()
	for len(data) > 0 {
		n := len(data)
		if p.idatSplit > 0 {
			n = min(n, p.idatSplit)
		}
		chunk("IDAT", data[:n])
		data = data[n:]
	}
	chunk("IEND", nil)
	return out.Bytes()
}

// randomRows returns h rows of w·bpp bytes of smooth content plus noise, so all
// filters and both literals and matches occur.
func randomRows(r *rand.Rand, w, h, bpp int) [][]byte {
	rows := make([][]byte, h)
	for y := range rows {
		rows[y] = make([]byte, w*bpp)
		for i := range rows[y] {
			rows[y][i] = byte((i/bpp)*3 + y*5 + (i%bpp)*40 + r.IntN(7))
		}
	}
	return rows
}

func encodeStd(t *testing.T, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeCases(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	const w, h = 37, 23

	gray := image.NewGray(image.Rect(0, 0, w, h))
	gray16 := image.NewGray16(image.Rect(0, 0, w, h))
	rgba := image.NewNRGBA(image.Rect(0, 0, w, h))
	rgb := image.NewRGBA(image.Rect(0, 0, w, h))
	grayRGB := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8(x*7 + y*3)
			gray.SetGray(x, y, color.Gray{v})
			gray16.SetGray16(x, y, color.Gray16{uint16(x*1700 + y*900 + r.IntN(300))})
			// Alpha 0 on some pixels: their colour must survive, as in PIL's convert('RGB').
			rgba.SetNRGBA(x, y, color.NRGBA{v, 255 - v, uint8(y * 9), uint8((x % 3) * 120)})
			rgb.SetRGBA(x, y, color.RGBA{v, uint8(y * 11), 200, 255})
			grayRGB.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	pal := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{
		color.RGBA{0, 0, 0, 255}, color.RGBA{255, 0, 0, 255}, color.RGBA{0, 255, 0, 255}, color.RGBA{10, 20, 30, 255},
		color.RGBA{40, 40, 40, 255}, color.NRGBA{90, 80, 70, 0}, color.RGBA{1, 2, 3, 255}, color.RGBA{4, 5, 6, 255},
		color.RGBA{7, 8, 9, 255}, color.RGBA{10, 11, 12, 255}, color.RGBA{13, 14, 15, 255}, color.RGBA{16, 17, 18, 255},
		color.RGBA{19, 20, 21, 255}, color.RGBA{22, 23, 24, 255}, color.RGBA{25, 26, 27, 255}, color.RGBA{28, 29, 30, 255},
		color.RGBA{31, 32, 33, 255},
	})
	pal4 := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Gray{0}, color.Gray{80}, color.Gray{160}, color.Gray{255}})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(r.IntN(17))
		pal4.Pix[i] = uint8(r.IntN(4))
	}
	// JPEG subsamples chroma: the colour test image must be smooth.
	smooth := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			smooth.SetRGBA(x, y, color.RGBA{uint8(40 + 4*x), uint8(200 - 5*y), uint8(90 + 2*x + 2*y), 255})
		}
	}
	var jpgGray, jpgRGB bytes.Buffer
	if err := jpeg.Encode(&jpgGray, gray, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&jpgRGB, smooth, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	gaRows := randomRows(r, w, h, 2)
	ga16Rows := randomRows(r, w, h, 4)

	good := []struct {
		name     string
		file     []byte
		wantC    int
		want     func(x, y int) [3]uint8 // expected RGB
		tol      int
		fastPath bool // the fast PNG path must accept it
	}{
		{"gray8.png", encodeStd(t, gray), 1, func(x, y int) [3]uint8 { v := gray.GrayAt(x, y).Y; return [3]uint8{v, v, v} }, 0, true},
		{"gray16.png", encodeStd(t, gray16), 1, func(x, y int) [3]uint8 {
			v := to8(uint32(gray16.Gray16At(x, y).Y))
			return [3]uint8{v, v, v}
		}, 0, true},
		{"rgba_alpha_dropped.png", encodeStd(t, rgba), 3, func(x, y int) [3]uint8 {
			c := rgba.NRGBAAt(x, y)
			return [3]uint8{c.R, c.G, c.B}
		}, 0, true},
		{"rgb.png", encodeStd(t, rgb), 3, func(x, y int) [3]uint8 { c := rgb.RGBAAt(x, y); return [3]uint8{c.R, c.G, c.B} }, 0, true},
		{"rgb_equal_channels.png", encodeStd(t, grayRGB), 1, func(x, y int) [3]uint8 { c := grayRGB.RGBAAt(x, y); return [3]uint8{c.R, c.G, c.B} }, 0, true},
		{"palette_trns.png", encodeStd(t, pal), 3, func(x, y int) [3]uint8 {
			c := color.NRGBAModel.Convert(pal.Palette[pal.ColorIndexAt(x, y)]).(color.NRGBA)
			return [3]uint8{c.R, c.G, c.B}
		}, 0, true},
		{"palette_2bit_fallback.png", encodeStd(t, pal4), 1, func(x, y int) [3]uint8 {
			v := pal4.Palette[pal4.ColorIndexAt(x, y)].(color.Gray).Y
			return [3]uint8{v, v, v}
		}, 0, false},
		{"gray_alpha8.png", rawPNG{w: w, h: h, ctype: pngGrayAlpha, depth: 8, rows: gaRows, filters: []byte{0, 1, 2, 3, 4}, level: 6}.encode(t), 1,
			func(x, y int) [3]uint8 { v := gaRows[y][2*x]; return [3]uint8{v, v, v} }, 0, true},
		{"gray_alpha16.png", rawPNG{w: w, h: h, ctype: pngGrayAlpha, depth: 16, rows: ga16Rows, filters: []byte{4, 3, 2, 1, 0}, level: 1, idatSplit: 50}.encode(t), 1,
			func(x, y int) [3]uint8 {
				v := to8(uint32(ga16Rows[y][4*x])<<8 | uint32(ga16Rows[y][4*x+1]))
				return [3]uint8{v, v, v}
			}, 0, true},
		{"gray.jpg", jpgGray.Bytes(), 1, func(x, y int) [3]uint8 { v := gray.GrayAt(x, y).Y; return [3]uint8{v, v, v} }, 8, false},
		{"rgb.jpg", jpgRGB.Bytes(), 3, func(x, y int) [3]uint8 { c := smooth.RGBAAt(x, y); return [3]uint8{c.R, c.G, c.B} }, 6, false},
	}
	dir := t.TempDir()
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := DecodeFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if m.W != w || m.H != h || m.C != tc.wantC {
				t.Fatalf("got %dx%dx%d, want %dx%dx%d", m.W, m.H, m.C, w, h, tc.wantC)
			}
			rgb := m.RGB()
			worst := 0
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					want := tc.want(x, y)
					for c := 0; c < 3; c++ {
						d := int(rgb.Pix[(y*w+x)*3+c]) - int(want[c])
						worst = max(worst, d, -d)
					}
				}
			}
			if worst > tc.tol {
				t.Errorf("max |diff| %d > %d", worst, tc.tol)
			}
			if strings.HasSuffix(tc.name, ".png") {
				fast, ferr := decodePNGFast(tc.file)
				if tc.fastPath && ferr != nil {
					t.Fatalf("fast path rejected it: %v", ferr)
				}
				if ferr == nil && !bytes.Equal(fast.Pix, m.Pix) {
					t.Error("fast path and Decode differ")
				}
				std, err := png.Decode(bytes.NewReader(tc.file))
				if err != nil {
					t.Fatal(err)
				}
				if s := FromImage(std); !bytes.Equal(s.Pix, m.Pix) || s.C != m.C {
					t.Error("Decode differs from image/png")
				}
			}
		})
	}

	truncated := encodeStd(t, gray16)
	truncated = truncated[:len(truncated)*2/3]
	badCRC := encodeStd(t, gray)
	badCRC[40] ^= 0xff // inside the IDAT data
	var badPix bytes.Buffer
	jw := jpgRGB.Bytes()
	badPix.Write(jw[:len(jw)/2])
	bad := []struct {
		name, want string
		file       []byte
	}{
		{"truncated.png", "not enough pixel data", truncated},
		{"text.png", "not a PNG or JPEG", []byte("this is not an image\n")},
		{"empty.png", "empty file", nil},
		{"bad_crc.png", "checksum", badCRC},
		{"truncated.jpg", "EOF", badPix.Bytes()},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := DecodeFile(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should name %s and contain %q", err, path, tc.want)
			}
		})
	}
	t.Run("missing.png", func(t *testing.T) {
		path := filepath.Join(dir, "missing.png")
		if _, err := DecodeFile(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v should name %s", err, path)
		}
	})
}

// TestPNGFastFilters checks every filter type, bytes-per-pixel value, depth and
// compression level of the fast path against image/png.
func TestPNGFastFilters(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, ct := range []struct {
		name          string
		ctype, depth  int
		bytesPerPixel int
	}{
		{"gray8", pngGray, 8, 1}, {"gray16", pngGray, 16, 2}, {"ga8", pngGrayAlpha, 8, 2},
		{"rgb8", pngRGB, 8, 3}, {"rgba8", pngRGBA, 8, 4}, {"rgb16", pngRGB, 16, 6}, {"rgba16", pngRGBA, 16, 8},
	} {
		for _, f := range []byte{0, 1, 2, 3, 4} {
			for _, level := range []int{zlib.NoCompression, zlib.BestSpeed, zlib.DefaultCompression, zlib.HuffmanOnly} {
				p := rawPNG{w: 19, h: 11, ctype: ct.ctype, depth: ct.depth, rows: randomRows(r, 19, 11, ct.bytesPerPixel),
					filters: []byte{f, f, 0}, level: level, idatSplit: 7}
				b := p.encode(t)
				fast, err := decodePNGFast(b)
				if err != nil {
					t.Fatalf("%s filter %d level %d: %v", ct.name, f, level, err)
				}
				std, err := png.Decode(bytes.NewReader(b))
				if err != nil {
					t.Fatalf("%s filter %d level %d: image/png: %v", ct.name, f, level, err)
				}
				if s := FromImage(std); !bytes.Equal(s.Pix, fast.Pix) || s.C != fast.C {
					t.Errorf("%s filter %d level %d: fast path differs from image/png", ct.name, f, level)
				}
			}
		}
	}
}

// TestInflate compares the inflater with compress/zlib on data of every block
// type and size, and checks that damaged streams fail without panicking.
func TestInflate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, level := range []int{zlib.NoCompression, zlib.BestSpeed, zlib.DefaultCompression, zlib.BestCompression, zlib.HuffmanOnly} {
		for _, n := range []int{0, 1, 10, 1000, 70000, 300000} {
			src := make([]byte, n)
			for i := range src {
				if i > 300 && r.IntN(3) == 0 {
					src[i] = src[i-1-r.IntN(300)] // matches, also overlapping ones
				} else {
					src[i] = byte(r.IntN(20))
				}
			}
			var b bytes.Buffer
			zw, _ := zlib.NewWriterLevel(&b, level)
			zw.Write(src)
			zw.Close()
			z := b.Bytes()
			out := make([]byte, n)
			if err := zlibInflate(z, out); err != nil {
				t.Fatalf("level %d n %d: %v", level, n, err)
			}
			if !bytes.Equal(out, src) {
				t.Fatalf("level %d n %d: output differs", level, n)
			}
			if n < 1000 {
				continue
			}
			if err := zlibInflate(z, make([]byte, n-1)); err == nil {
				t.Errorf("level %d n %d: short output buffer accepted", level, n)
			}
			if err := zlibInflate(z[:len(z)/2], out); err == nil {
				t.Errorf("level %d n %d: truncated stream accepted", level, n)
			}
			// Damaged streams: no panic, and whatever is accepted must be what
			// compress/zlib makes of it (Adler-32 does not catch every damage).
			for k := 0; k < 30; k++ {
				d := append([]byte(nil), z...)
				d[2+r.IntN(len(d)-2)] ^= byte(1 + r.IntN(255))
				if err := zlibInflate(d, out); err == nil && !bytes.Equal(out, src) {
					zr, err := zlib.NewReader(bytes.NewReader(d))
					var std []byte
					if err == nil {
						std, err = io.ReadAll(zr)
					}
					if err != nil || !bytes.Equal(std, out) {
						t.Errorf("level %d n %d: damaged stream accepted, compress/zlib says %v", level, n, err)
					}
				}
			}
		}
	}
}
