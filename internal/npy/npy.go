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

	"dira/internal/bounded"
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

// maxHeader bounds the header dictionary of a version 2 or 3 file (whose
// length field is 32 bits). numpy writes version 1 (at most 65535 bytes)
// unless a header needs more, and itself refuses headers over 10000 bytes
// unless told otherwise.
const maxHeader = 1 << 20

// Header is a .npy file's header: the element type, the shape, and the
// number of bytes before the data.
type Header struct {
	Descr string // numpy's dtype string: "<f4", "<f8", "<i8", "|u1", ...
	Shape []int
	Len   int64 // magic, version, length field and dictionary
}

// ElemBytes is the size of one element of descr, or 0 for a dtype this
// package does not read.
func ElemBytes(descr string) int64 {
	switch descr {
	case "<f4":
		return 4
	case "<f8", "<i8":
		return 8
	case "|u1", "<u1", "|b1":
		return 1
	}
	return 0
}

// DataBytes is the size of the data the header declares; an element count
// that overflows is an error.
func (h Header) DataBytes() (int64, error) {
	n, err := bounded.Numel(bounded.Ints(h.Shape), ElemBytes(h.Descr))
	if err != nil {
		return 0, fmt.Errorf("npy: %w", err)
	}
	return n * ElemBytes(h.Descr), nil
}

// ReadHeader reads and checks a .npy header; r is left at the first data
// byte. Only little-endian float32, float64, int64 and uint8/bool arrays in
// C order are accepted.
func ReadHeader(r io.Reader) (Header, error) {
	var pre [10]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Header{}, fmt.Errorf("npy: header: %w", truncated(err))
	}
	if !bytes.Equal(pre[:6], magic) {
		return Header{}, errors.New("npy: not a .npy file (bad magic)")
	}
	var hlen int64
	h := Header{Len: 10}
	switch pre[6] {
	case 1:
		hlen = int64(binary.LittleEndian.Uint16(pre[8:10]))
	case 2, 3:
		var more [2]byte
		if _, err := io.ReadFull(r, more[:]); err != nil {
			return Header{}, fmt.Errorf("npy: header: %w", truncated(err))
		}
		hlen = int64(binary.LittleEndian.Uint32(append(pre[8:10:10], more[:]...)))
		h.Len += 2
		if hlen > maxHeader {
			return Header{}, fmt.Errorf("npy: header of %d bytes (at most %d are read)", hlen, maxHeader)
		}
	default:
		return Header{}, fmt.Errorf("npy: unsupported version %d", pre[6])
	}
	// Read the dictionary as it arrives: a length field is not a promise
	// that the bytes exist.
	dict, err := io.ReadAll(io.LimitReader(r, hlen))
	if err != nil {
		return Header{}, fmt.Errorf("npy: header: %w", err)
	}
	if int64(len(dict)) < hlen {
		return Header{}, fmt.Errorf("npy: header: truncated (%d of %d bytes)", len(dict), hlen)
	}
	h.Len += hlen
	m := headerRE.FindStringSubmatch(string(dict))
	if m == nil {
		return Header{}, fmt.Errorf("npy: cannot parse header %q", truncate(dict, 200))
	}
	if m[2] == "True" {
		return Header{}, errors.New("npy: Fortran-order arrays are not supported")
	}
	h.Descr = m[1]
	if ElemBytes(h.Descr) == 0 {
		return Header{}, fmt.Errorf("npy: unsupported dtype %q", h.Descr)
	}
	for _, s := range strings.Split(m[3], ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil || d < 0 {
			return Header{}, fmt.Errorf("npy: bad shape %q", truncate([]byte(m[3]), 200))
		}
		h.Shape = append(h.Shape, d)
	}
	if _, err := h.DataBytes(); err != nil {
		return Header{}, err
	}
	return h, nil
}

// Read decodes one .npy stream. Memory grows with the data actually read,
// never ahead of it: a header declaring a huge shape over a short stream
// fails as truncated having allocated little.
func Read(r io.Reader) (Array, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return Array{}, err
	}
	return ReadData(r, h, false)
}

// ReadSized decodes one .npy stream of exactly size bytes (a zip entry, a
// file): a header whose data would need more or fewer bytes than follow it
// is refused before anything is allocated for the data.
func ReadSized(r io.Reader, size int64) (Array, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return Array{}, err
	}
	if err := h.Fits(size); err != nil {
		return Array{}, err
	}
	return ReadData(r, h, true)
}

// Fits checks that the header's data fills a stream of size bytes exactly.
func (h Header) Fits(size int64) error {
	n, err := h.DataBytes()
	if err != nil {
		return err
	}
	if size-h.Len != n {
		return fmt.Errorf("npy: shape %v of %s needs %d data bytes, the stream holds %d", h.Shape, h.Descr, n, size-h.Len)
	}
	return nil
}

// ReadData reads the data of header h from r, which must be at its start.
// With exact (the caller has checked that the data is there, Fits), the
// array is allocated at once; otherwise it grows in chunks as data arrives.
func ReadData(r io.Reader, h Header, exact bool) (Array, error) {
	nbytes, err := h.DataBytes()
	if err != nil {
		return Array{}, err
	}
	es := ElemBytes(h.Descr)
	n := nbytes / es
	capHint := n
	if !exact {
		capHint = min(n, chunkBytes/es)
	}
	var fill func(b []byte)
	switch h.Descr {
	case "<f4":
		d := make([]float32, 0, capHint)
		fill = func(b []byte) {
			for i := 0; i < len(b); i += 4 {
				d = append(d, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
			}
		}
		return readChunks(r, h, nbytes, es, fill, func() any { return d })
	case "<f8":
		d := make([]float64, 0, capHint)
		fill = func(b []byte) {
			for i := 0; i < len(b); i += 8 {
				d = append(d, math.Float64frombits(binary.LittleEndian.Uint64(b[i:])))
			}
		}
		return readChunks(r, h, nbytes, es, fill, func() any { return d })
	case "<i8":
		d := make([]int64, 0, capHint)
		fill = func(b []byte) {
			for i := 0; i < len(b); i += 8 {
				d = append(d, int64(binary.LittleEndian.Uint64(b[i:])))
			}
		}
		return readChunks(r, h, nbytes, es, fill, func() any { return d })
	default: // one-byte types
		d := make([]uint8, 0, capHint)
		fill = func(b []byte) { d = append(d, b...) }
		return readChunks(r, h, nbytes, es, fill, func() any { return d })
	}
}

// chunkBytes is how much data is read (and allocated ahead) at a time when
// the stream's size is not known.
const chunkBytes = 1 << 20

func readChunks(r io.Reader, h Header, nbytes, es int64, fill func([]byte), result func() any) (Array, error) {
	buf := make([]byte, min(nbytes, chunkBytes))
	for done := int64(0); done < nbytes; {
		k := min(int64(len(buf)), nbytes-done)
		got, err := io.ReadFull(r, buf[:k])
		if err != nil {
			return Array{}, fmt.Errorf("npy: data (%s %v): truncated after %d of %d bytes: %w", h.Descr, h.Shape, done+int64(got), nbytes, truncated(err))
		}
		fill(buf[:k])
		done += k
	}
	return Array{Shape: h.Shape, Data: result()}, nil
}

// truncated turns the EOF of a short read into io.ErrUnexpectedEOF.
func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
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

// MaxNPZBytes bounds the decompressed size of all arrays of one .npz
// archive together: a few deflated megabytes can declare gigabytes.
const MaxNPZBytes = 4 << 30

// ReadNPZ decodes every array of an .npz archive (numpy.savez or
// savez_compressed), keyed by name without the .npy suffix. Each entry's
// declared size is checked against what its compressed bytes can hold and
// against its header's shape before the array is allocated, and all of
// them together against MaxNPZBytes.
func ReadNPZ(r io.ReaderAt, size int64) (map[string]Array, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("npz: %w", err)
	}
	out := map[string]Array{}
	var total int64
	for _, f := range zr.File {
		n, err := bounded.Entry(f, size)
		if err != nil {
			return nil, fmt.Errorf("npz: %w", err)
		}
		if total += n; total > MaxNPZBytes {
			return nil, fmt.Errorf("npz %s: the arrays decompress to more than %d bytes", f.Name, int64(MaxNPZBytes))
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("npz %s: %w", f.Name, err)
		}
		a, err := ReadSized(rc, n)
		if err == nil {
			err = bounded.End(rc)
		}
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
