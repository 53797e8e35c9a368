// Package npy reads and writes NumPy's .npy format (version 1.0, little-endian
// float32, float64, int64 and uint8 arrays in C order) and reads .npz archives
// of such arrays. Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
//
// It is how dira exchanges tensors with the Python reference (goldens) and
// how `dira infer` writes features.npy.
package npy

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Array is an n-dimensional array in C order. Data holds one of []float32,
// []float64, []int64 or []uint8.
type Array struct {
	Shape []int
	Data  any
}

// Float32 returns the array's values as float32 (converting other types).
func (a Array) Float32() []float32 {
	switch d := a.Data.(type) {
	case []float32:
		return d
	case []float64:
		out := make([]float32, len(d))
		for i, v := range d {
			out[i] = float32(v)
		}
		return out
	case []int64:
		out := make([]float32, len(d))
		for i, v := range d {
			out[i] = float32(v)
		}
		return out
	case []uint8:
		out := make([]float32, len(d))
		for i, v := range d {
			out[i] = float32(v)
		}
		return out
	}
	return nil
}

var magic = []byte("\x93NUMPY")

var headerRE = regexp.MustCompile(`'descr':\s*'([^']+)'.*'fortran_order':\s*(True|False).*'shape':\s*\(([^)]*)\)`)

// Read decodes one .npy stream.
func Read(r io.Reader) (Array, error) {
	var pre [10]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Array{}, fmt.Errorf("npy: header: %w", err)
	}
	if !bytes.Equal(pre[:6], magic) {
		return Array{}, errors.New("npy: not a .npy file (bad magic)")
	}
	var hlen int
	switch pre[6] {
	case 1:
		hlen = int(binary.LittleEndian.Uint16(pre[8:10]))
	case 2, 3:
		var more [2]byte
		if _, err := io.ReadFull(r, more[:]); err != nil {
			return Array{}, fmt.Errorf("npy: header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(append(pre[8:10:10], more[:]...)))
	default:
		return Array{}, fmt.Errorf("npy: unsupported version %d", pre[6])
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(r, h); err != nil {
		return Array{}, fmt.Errorf("npy: header: %w", err)
	}
	m := headerRE.FindStringSubmatch(string(h))
	if m == nil {
		return Array{}, fmt.Errorf("npy: cannot parse header %q", h)
	}
	if m[2] == "True" {
		return Array{}, errors.New("npy: Fortran-order arrays are not supported")
	}
	var shape []int
	n := 1
	for _, s := range strings.Split(m[3], ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil || d < 0 {
			return Array{}, fmt.Errorf("npy: bad shape %q", m[3])
		}
		shape = append(shape, d)
		n *= d
	}
	var data any
	switch m[1] {
	case "<f4":
		data = make([]float32, n)
	case "<f8":
		data = make([]float64, n)
	case "<i8":
		data = make([]int64, n)
	case "|u1", "<u1", "|b1":
		data = make([]uint8, n)
	default:
		return Array{}, fmt.Errorf("npy: unsupported dtype %q", m[1])
	}
	if err := binary.Read(r, binary.LittleEndian, data); err != nil {
		return Array{}, fmt.Errorf("npy: data (%s %v): %w", m[1], shape, err)
	}
	return Array{Shape: shape, Data: data}, nil
}

// Write encodes a as a version 1.0 .npy stream.
func Write(w io.Writer, a Array) error {
	var descr string
	n := 0
	switch d := a.Data.(type) {
	case []float32:
		descr, n = "<f4", len(d)
	case []float64:
		descr, n = "<f8", len(d)
	case []int64:
		descr, n = "<i8", len(d)
	case []uint8:
		descr, n = "|u1", len(d)
	default:
		return fmt.Errorf("npy: unsupported data type %T", a.Data)
	}
	want := 1
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		want *= d
		dims[i] = strconv.Itoa(d)
	}
	if want != n {
		return fmt.Errorf("npy: shape %v needs %d values, have %d", a.Shape, want, n)
	}
	shape := strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape)
	// Pad so the data starts on a 64-byte boundary, header ends with '\n'.
	total := len(magic) + 4 + len(h) + 1
	h += strings.Repeat(" ", (64-total%64)%64) + "\n"
	if len(h) > math.MaxUint16 {
		return errors.New("npy: header too long")
	}
	var pre [10]byte
	copy(pre[:], magic)
	pre[6], pre[7] = 1, 0
	binary.LittleEndian.PutUint16(pre[8:], uint16(len(h)))
	if _, err := w.Write(pre[:]); err != nil {
		return err
	}
	if _, err := io.WriteString(w, h); err != nil {
		return err
	}
	return binary.Write(w, binary.LittleEndian, a.Data)
}

// ReadNPZ decodes every array of an .npz archive (numpy.savez), keyed by name
// without the .npy suffix.
func ReadNPZ(r io.ReaderAt, size int64) (map[string]Array, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("npz: %w", err)
	}
	out := map[string]Array{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("npz %s: %w", f.Name, err)
		}
		a, err := Read(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("npz %s: %w", f.Name, err)
		}
		out[strings.TrimSuffix(f.Name, ".npy")] = a
	}
	return out, nil
}

// ReadNPZFile reads every array of the .npz file at path; errors name it.
func ReadNPZFile(path string) (map[string]Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npz: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("npz: %w", err)
	}
	m, err := ReadNPZ(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
