package npy

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"dira/internal/memtest"
)

// header makes a version 1.0 .npy header for descr and a shape written as
// numpy writes it ("10000000000," for a 1-d shape).
func header(descr, shape string) []byte {
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape)
	h += strings.Repeat(" ", (64-(10+len(h)+1)%64)%64) + "\n"
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
	return append(b, h...)
}

// hugeNPY is a 200-byte .npy file whose header declares 10^10 float32
// values (40 GB).
func hugeNPY() []byte {
	return append(header("<f4", "10000000000,"), make([]byte, 64)...)
}

// TestRefusesDeclaredSizes: headers whose shape the stream cannot back are
// refused, naming the shape, with Read and ReadSized alike.
func TestRefusesDeclaredSizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"huge_1d", hugeNPY(), "truncated"},
		{"huge_3d", append(header("<f8", "100000, 100000, 100000"), make([]byte, 80)...), "truncated"},
		{"overflow", header("<f4", "4294967296, 4294967296, 4294967296"), "overflows"},
		{"negative", header("<f4", "-3,"), "bad shape"},
		{"short_dict", []byte("\x93NUMPY\x01\x00\xff\x00{'descr'"), "truncated"},
		{"v2_huge_dict", []byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f{'descr'"), "header of"},
		{"big_endian", append(header(">f4", "1,"), 0, 0, 0, 0), "unsupported dtype"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read: error %v, want %q", err, tc.want)
			}
			_, err = ReadSized(bytes.NewReader(tc.in), int64(len(tc.in)))
			if err == nil {
				t.Errorf("ReadSized: no error")
			}
		})
	}
	// ReadSized names both sizes.
	_, err := ReadSized(bytes.NewReader(hugeNPY()), int64(len(hugeNPY())))
	if err == nil || !strings.Contains(err.Error(), "needs 40000000000 data bytes, the stream holds 64") {
		t.Errorf("ReadSized: %v", err)
	}
}

// TestHugeHeaderMemory: refusing the 40 GB header takes little memory
// (measured in a child process; issue 13 asks for under 200 MB).
func TestHugeHeaderMemory(t *testing.T) {
	if memtest.Child(t) {
		_, err := Read(bytes.NewReader(hugeNPY()))
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("error %v, want truncated", err)
		}
		return
	}
	peak := memtest.PeakRSS(t)
	t.Logf("peak RSS while refusing a 10^10-element header: %s", memtest.MB(peak))
	if peak > 200<<20 {
		t.Fatalf("peak RSS %s, want under 200 MB", memtest.MB(peak))
	}
}

// zipBomb writes an .npz whose one entry is a float32 array of n zeros,
// deflated (1 GB of zeros deflates to about 1 MB).
func zipBomb(t testing.TB, n int64) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "w.npy", Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(header("<f4", fmt.Sprintf("%d,", n)))
	zero := make([]byte, 1<<20)
	for left := 4 * n; left > 0; left -= int64(len(zero)) {
		w.Write(zero[:min(left, int64(len(zero)))])
	}
	zw.Close()
	return b.Bytes()
}

// TestNPZBombMemory: an .npz entry that inflates to more than MaxNPZBytes
// (4 GB from 4 MB) is refused before it is read.
func TestNPZBombMemory(t *testing.T) {
	if memtest.Child(t) {
		path := os.Getenv("DIRA_TEST_NPZ_BOMB")
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		_, err = ReadNPZ(f, st.Size())
		if err == nil || !strings.Contains(err.Error(), "decompress to more than") {
			t.Fatalf("error %v, want the total cap", err)
		}
		return
	}
	path := filepath.Join(t.TempDir(), "bomb.npz")
	b := zipBomb(t, (MaxNPZBytes+(1<<20))/4)
	t.Logf("bomb: %d bytes deflated", len(b))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DIRA_TEST_NPZ_BOMB", path)
	peak := memtest.PeakRSS(t)
	t.Logf("peak RSS while refusing the npz bomb: %s", memtest.MB(peak))
	if peak > 200<<20 {
		t.Fatalf("peak RSS %s, want under 200 MB", memtest.MB(peak))
	}
}

// TestNPZEntryChecks: an entry declaring other sizes than its bytes hold,
// or a shape other than its size, or a damaged CRC, is refused.
func TestNPZEntryChecks(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	mk := func(method uint16, body []byte) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "a.npy", Method: method})
		w.Write(body)
		zw.Close()
		return b.Bytes()
	}
	read := func(b []byte) error {
		_, err := ReadNPZ(bytes.NewReader(b), int64(len(b)))
		return err
	}
	for _, m := range []uint16{zip.Store, zip.Deflate} {
		if err := read(mk(m, good)); err != nil {
			t.Fatalf("method %d: %v", m, err)
		}
		if err := read(mk(m, append(bytes.Clone(good), 0, 0, 0, 0))); err == nil || !strings.Contains(err.Error(), "needs 24 data bytes, the stream holds 28") {
			t.Errorf("method %d, extra data: %v", m, err)
		}
	}
	stored := mk(zip.Store, good)
	i := bytes.Index(stored, good)
	damaged := bytes.Clone(stored)
	damaged[i+len(good)-1] ^= 1
	if err := read(damaged); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("damaged data: %v", err)
	}
	if err := read(stored[:len(stored)-30]); err == nil {
		t.Errorf("truncated archive accepted")
	}
}

// FuzzRead: Read and ReadSized never panic, agree, and whatever they accept
// has as many values as its shape and writes back to the same bytes' array.
func FuzzRead(f *testing.F) {
	for _, a := range []Array{
		{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6.5}},
		{Shape: []int{4}, Data: []int64{-1, 0, 1, 1 << 40}},
		{Shape: []int{}, Data: []float64{3.25}},
		{Shape: []int{2, 2}, Data: []uint8{0, 1, 254, 255}},
	} {
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(hugeNPY())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(bytes.NewReader(b))
		as, errs := ReadSized(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if errs == nil {
				t.Fatalf("ReadSized accepts what Read refuses (%v)", err)
			}
			return
		}
		n := 1
		for _, d := range a.Shape {
			n *= d
		}
		if got := reflect.ValueOf(a.Data).Len(); got != n {
			t.Fatalf("shape %v with %d values", a.Shape, got)
		}
		if errs == nil && !sameArray(a, as) {
			t.Fatalf("Read and ReadSized differ")
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			if _, ok := a.Data.([]uint8); !ok {
				t.Fatalf("write back: %v", err)
			}
			return
		}
		back, err := Read(&buf)
		if err != nil || !sameArray(back, a) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzReadNPZ: ReadNPZ never panics on any bytes.
func FuzzReadNPZ(f *testing.F) {
	var buf bytes.Buffer
	Write(&buf, Array{Shape: []int{3}, Data: []float32{1, 2, 3}})
	for _, m := range []uint16{zip.Store, zip.Deflate} {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "x.npy", Method: m})
		w.Write(buf.Bytes())
		zw.Close()
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadNPZ(bytes.NewReader(b), int64(len(b)))
		if err == nil {
			for k, a := range m {
				if a.Data == nil {
					t.Fatalf("%s: no data", k)
				}
			}
		}
	})
}

// sameArray compares shapes and the data's bits: a NaN read twice is the
// same value, though reflect.DeepEqual calls it unequal to itself.
func sameArray(a, b Array) bool {
	if !reflect.DeepEqual(a.Shape, b.Shape) || reflect.TypeOf(a.Data) != reflect.TypeOf(b.Data) {
		return false
	}
	var x, y bytes.Buffer
	if binary.Write(&x, binary.LittleEndian, a.Data) != nil || binary.Write(&y, binary.LittleEndian, b.Data) != nil {
		return reflect.DeepEqual(a.Data, b.Data)
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}
