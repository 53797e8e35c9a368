package npy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, a := range []Array{
		{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6.5}},
		{Shape: []int{4}, Data: []int64{-1, 0, 1, 1 << 40}},
		{Shape: []int{}, Data: []float64{3.25}},
		{Shape: []int{2, 2}, Data: []uint8{0, 1, 254, 255}},
	} {
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatal(err)
		}
		got, err := Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Shape) == 0 && len(got.Shape) == 0 {
			got.Shape = a.Shape
		}
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip: got %+v, want %+v", got, a)
		}
	}
}

func TestRejectsBadInput(t *testing.T) {
	for name, in := range map[string][]byte{
		"not_npy":   []byte("PNG....and more bytes"),
		"truncated": []byte("\x93NUMPY\x01\x00\x40\x00{'descr': '<f4'"),
	} {
		if _, err := Read(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	var buf bytes.Buffer
	if err := Write(&buf, Array{Shape: []int{3}, Data: []float32{1}}); err == nil || !strings.Contains(err.Error(), "needs 3 values") {
		t.Fatalf("shape mismatch not reported: %v", err)
	}
}

// TestNumPyReadsOurFiles checks the format against numpy itself (Debian's
// python3-numpy, installed by setup).
func TestNumPyReadsOurFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.npy")
	var buf bytes.Buffer
	if err := Write(&buf, Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6.5}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, buf.Bytes(), 0o644)
	out, err := exec.Command("/usr/bin/python3", "-c",
		"import numpy as np,sys; a=np.load(sys.argv[1]); print(a.dtype, a.shape, a.sum())", p).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "float32 (2, 3) 21.5" {
		t.Fatalf("numpy read %q", got)
	}
	// And we read numpy's npz.
	z := filepath.Join(dir, "b.npz")
	if out, err := exec.Command("/usr/bin/python3", "-c",
		"import numpy as np,sys; np.savez(sys.argv[1], w=np.arange(6,dtype=np.float32).reshape(2,3), n=np.array([7],dtype=np.int64))", z).CombinedOutput(); err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	f, _ := os.Open(z)
	defer f.Close()
	st, _ := f.Stat()
	m, err := ReadNPZ(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m["w"].Data, []float32{0, 1, 2, 3, 4, 5}) || !reflect.DeepEqual(m["w"].Shape, []int{2, 3}) || m["n"].Data.([]int64)[0] != 7 {
		t.Fatalf("npz read %+v", m)
	}
}
