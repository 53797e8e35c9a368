package torchsave

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"dira/internal/bounded"
)

// Float32s reads the values of a floating-point tensor (float32, float64,
// float16, bfloat16 storages) in C order, as float32.
func (f *File) Float32s(t *Tensor) ([]float32, error) {
	if !t.Storage.DType.IsFloat() {
		return nil, fmt.Errorf("a %s tensor, not a floating-point one", t.Storage.DType)
	}
	var conv func(b []byte) float32
	switch t.Storage.DType {
	case Float32:
		conv = func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }
	case Float64:
		conv = func(b []byte) float32 { return float32(math.Float64frombits(binary.LittleEndian.Uint64(b))) }
	case Float16:
		conv = func(b []byte) float32 { return halfToFloat32(binary.LittleEndian.Uint16(b)) }
	case BFloat16:
		conv = func(b []byte) float32 { return math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16) }
	}
	return values(f, t, conv)
}

// Int64s reads the values of an integer or bool tensor in C order, as
// int64 (bools as 0 and 1).
func (f *File) Int64s(t *Tensor) ([]int64, error) {
	var conv func(b []byte) int64
	switch t.Storage.DType {
	case Int64:
		conv = func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) }
	case Int32:
		conv = func(b []byte) int64 { return int64(int32(binary.LittleEndian.Uint32(b))) }
	case Int16:
		conv = func(b []byte) int64 { return int64(int16(binary.LittleEndian.Uint16(b))) }
	case Int8:
		conv = func(b []byte) int64 { return int64(int8(b[0])) }
	case Uint8:
		conv = func(b []byte) int64 { return int64(b[0]) }
	case Bool:
		conv = func(b []byte) int64 {
			if b[0] != 0 {
				return 1
			}
			return 0
		}
	default:
		return nil, fmt.Errorf("a %s tensor, not an integer one", t.Storage.DType)
	}
	return values(f, t, conv)
}

// values reads the storage elements t's view touches and gathers the view.
// A contiguous view is converted chunk by chunk straight into the result;
// a strided one reads the raw bytes of its span first (at most the
// storage's size, which Open checked).
func values[T float32 | int64](f *File, t *Tensor, conv func([]byte) T) ([]T, error) {
	n := t.Numel()
	var zero T
	out := int64(0)
	switch any(zero).(type) {
	case float32:
		out = 4
	default:
		out = 8
	}
	if f.read+n*out > f.lim.MaxTotalBytes {
		return nil, fmt.Errorf("the tensors read need more than the %d bytes a file may give", f.lim.MaxTotalBytes)
	}
	if n == 0 {
		return []T{}, nil
	}
	es := t.Storage.DType.Size()
	r, closeFn, err := f.open(t.Storage, t.lo*es, (t.hi-t.lo)*es)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	res := make([]T, n)
	if t.contiguous() {
		buf := make([]byte, min(n*es, 1<<20))
		for i := int64(0); i < n; {
			k := min(int64(len(buf))/es, n-i)
			if _, err := io.ReadFull(r, buf[:k*es]); err != nil {
				return nil, fmt.Errorf("storage %q: %w", t.Storage.Key, withTruncated(err))
			}
			for j := range k {
				res[i+j] = conv(buf[j*es:])
			}
			i += k
		}
	} else {
		raw := make([]byte, (t.hi-t.lo)*es)
		if _, err := io.ReadFull(r, raw); err != nil {
			return nil, fmt.Errorf("storage %q: %w", t.Storage.Key, withTruncated(err))
		}
		idx := make([]int64, len(t.Shape))
		for k := range res {
			off := t.Offset - t.lo
			for i, j := range idx {
				off += j * t.Stride[i]
			}
			res[k] = conv(raw[off*es:])
			for d := len(idx) - 1; d >= 0; d-- {
				idx[d]++
				if idx[d] < t.Shape[d] {
					break
				}
				idx[d] = 0
			}
		}
	}
	f.read += n * out
	return res, nil
}

// contiguous reports a C-order view that covers its span exactly.
func (t *Tensor) contiguous() bool {
	want := int64(1)
	for i := len(t.Shape) - 1; i >= 0; i-- {
		if t.Shape[i] != 1 && t.Stride[i] != want {
			return false
		}
		want *= t.Shape[i]
	}
	return t.hi-t.lo == t.Numel()
}

// open returns a reader of n bytes of storage s from byte off.
func (f *File) open(s *Storage, off, n int64) (io.Reader, func(), error) {
	if s.rec == nil {
		return io.NewSectionReader(f.r, s.offset+off, n), func() {}, nil
	}
	rc, err := s.rec.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("storage %q: %w", s.Key, err)
	}
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("storage %q: %w", s.Key, withTruncated(err))
	}
	total, _ := bounded.Entry(s.rec, f.size) // checked by Open
	r := io.Reader(io.LimitReader(rc, n))
	if off+n == total {
		// Reading to the end of the record: read on to EOF, where
		// archive/zip checks the CRC.
		r = &endChecked{r: rc, left: n}
	}
	return r, func() { rc.Close() }, nil
}

// endChecked yields left bytes of r, then checks that r is at its end.
type endChecked struct {
	r    io.Reader
	left int64
}

func (e *endChecked) Read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	n, err := e.r.Read(p[:min(int64(len(p)), e.left)])
	e.left -= int64(n)
	if e.left == 0 {
		if end := bounded.End(e.r); end != nil {
			return n, end
		}
		return n, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// halfToFloat32 converts an IEEE 754 binary16 value.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0: // zero or subnormal: mant x 2^-24
		v := float32(mant) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// where names obj (a *Tensor, or a *Storage through a tensor viewing it)
// by its path from the root object, for error messages:
// tensor ["state_dict"]["conv1.weight"].
func (f *File) where(obj any) string {
	type node struct {
		v      any
		parent int
		step   string
	}
	nodes := []node{{v: f.Root, parent: -1}}
	seen := map[any]bool{}
	match := func(v any) bool {
		if v == obj {
			return true
		}
		t, ok := v.(*Tensor)
		return ok && t.Storage == obj
	}
	for i := 0; i < len(nodes) && i < 1<<22; i++ {
		v := nodes[i].v
		if match(v) {
			var steps []string
			for j := i; j > 0; j = nodes[j].parent {
				steps = append(steps, nodes[j].step)
			}
			var b strings.Builder
			b.WriteString("tensor ")
			for k := len(steps) - 1; k >= 0; k-- {
				b.WriteString(steps[k])
			}
			if len(steps) == 0 {
				b.WriteString("(the saved object)")
			}
			return b.String()
		}
		var id any
		switch c := v.(type) {
		case *Dict, *List, *Object:
			id = c
		case Tuple:
			if len(c) > 0 {
				id = &c[0]
			}
		}
		if id != nil {
			if seen[id] {
				continue
			}
			seen[id] = true
		}
		add := func(child any, step string) { nodes = append(nodes, node{child, i, step}) }
		switch c := v.(type) {
		case *Dict:
			for k, key := range c.Keys {
				add(c.Values[k], "["+keyString(key)+"]")
			}
		case *List:
			for k, it := range c.Items {
				add(it, "["+strconv.Itoa(k)+"]")
			}
		case Tuple:
			for k, it := range c {
				add(it, "["+strconv.Itoa(k)+"]")
			}
		case *Object:
			if c.Dict != nil {
				add(c.Dict, "")
			}
			if c.Items != nil {
				add(c.Items, "")
			}
			add(Tuple(c.Args), "."+c.Class.Name+"()")
			add(c.State, ".__state__")
		}
	}
	if s, ok := obj.(*Storage); ok {
		return fmt.Sprintf("storage %q", s.Key)
	}
	return "a tensor"
}

func keyString(k any) string {
	if s, ok := k.(string); ok {
		return strconv.Quote(truncate(s, 200))
	}
	return typeName(k)
}
