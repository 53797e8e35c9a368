package bounded

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestNumel(t *testing.T) {
	for _, tc := range []struct {
		dims []int64
		elem int64
		want int64
		err  string
	}{
		{[]int64{}, 4, 1, ""},
		{[]int64{2, 3, 0}, 4, 0, ""},
		{[]int64{100000, 100000}, 4, 1e10, ""},
		{[]int64{1 << 32, 1 << 32}, 1, 0, "overflows"},
		{[]int64{1 << 31, 1 << 31}, 4, 0, "overflows"},
		{[]int64{3, -1}, 4, 0, "negative dimension"},
	} {
		n, err := Numel(tc.dims, tc.elem)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, want %q", tc.dims, err, tc.err)
			}
			continue
		}
		if err != nil || n != tc.want {
			t.Errorf("%v: %d %v, want %d", tc.dims, n, err, tc.want)
		}
	}
}

func TestEntry(t *testing.T) {
	mk := func(method uint16, body []byte) (*zip.Reader, []byte) {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "x", Method: method})
		w.Write(body)
		zw.Close()
		zr, err := zip.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len()))
		if err != nil {
			t.Fatal(err)
		}
		return zr, b.Bytes()
	}
	zeros := make([]byte, 1<<20)
	for _, m := range []uint16{zip.Store, zip.Deflate} {
		zr, b := mk(m, zeros)
		if n, err := Entry(zr.File[0], int64(len(b))); err != nil || n != 1<<20 {
			t.Errorf("method %d: %d %v", m, n, err)
		}
	}
	// A declared size beyond what the compressed bytes can hold.
	zr, b := mk(zip.Deflate, zeros)
	zr.File[0].UncompressedSize64 = zr.File[0].CompressedSize64*DeflateRatio + 1
	if _, err := Entry(zr.File[0], int64(len(b))); err == nil || !strings.Contains(err.Error(), "more than its") {
		t.Errorf("deflate bomb: %v", err)
	}
	zr, b = mk(zip.Store, []byte("abc"))
	zr.File[0].UncompressedSize64 = 1 << 40
	if _, err := Entry(zr.File[0], int64(len(b))); err == nil || !strings.Contains(err.Error(), "stored, but declares") {
		t.Errorf("stored mismatch: %v", err)
	}
	zr.File[0].UncompressedSize64, zr.File[0].CompressedSize64 = 1<<40, 1<<40
	if _, err := Entry(zr.File[0], int64(len(b))); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("beyond the archive: %v", err)
	}
	zr, b = mk(zip.Store, []byte("abc"))
	zr.File[0].Method = 12 // bzip2
	if _, err := Entry(zr.File[0], int64(len(b))); !errors.Is(err, zip.ErrAlgorithm) {
		t.Errorf("bzip2: %v", err)
	}
}

func TestEnd(t *testing.T) {
	if err := End(strings.NewReader("")); err != nil {
		t.Errorf("at the end: %v", err)
	}
	if err := End(strings.NewReader("x")); err == nil {
		t.Error("more data: no error")
	}
	if err := End(io.MultiReader(errReader{})); err == nil {
		t.Error("read error: no error")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }
