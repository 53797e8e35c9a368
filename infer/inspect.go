package infer

import (
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file reads what an ONNX model declares (its graph's inputs and
// outputs) straight from the protobuf encoding (onnx.proto: ModelProto,
// GraphProto, ValueInfoProto, TypeProto, TensorShapeProto), before ONNX
// Runtime sees the file: a few hundred bytes can declare an input of
// [N,3,100000,100000], and dira must refuse that before it allocates a
// batch. The walk reads field headers and the small messages it needs
// through an io.ReaderAt and skips everything else (weights) by offset, so
// its memory does not grow with the model.

// Limits of the walk: far beyond any real model's, small enough that a
// hostile file cannot make the walk itself costly.
const (
	maxIO       = 4096     // graph inputs or outputs
	maxRank     = 64       // dimensions of one tensor
	maxNameLen  = 64 << 10 // bytes of one name
	maxDepthPB  = 8        // nesting of the messages walked
	maxTypeSize = 1 << 20  // bytes of one ValueInfoProto's type
)

// ErrNotONNX marks a file that is not an ONNX model.
var ErrNotONNX = errors.New("not an ONNX model")

// ModelInfo is what an ONNX file declares, read without running it.
type ModelInfo struct {
	IRVersion int64
	// Inputs are the graph inputs that no initializer provides, in graph
	// order (what a session is fed); Outputs the graph outputs.
	Inputs, Outputs []TensorInfo
}

// InspectFile reads the ONNX model at path; see Inspect.
func InspectFile(path string) (ModelInfo, error) {
	if st, err := os.Stat(path); err != nil {
		return ModelInfo{}, fmt.Errorf("infer: read model: %w", err)
	} else if !st.Mode().IsRegular() {
		return ModelInfo{}, fmt.Errorf("infer: read model %s: %w (not a regular file)", path, ErrNotONNX)
	}
	f, err := os.Open(path)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("infer: read model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ModelInfo{}, fmt.Errorf("infer: read model: %w", err)
	}
	mi, err := Inspect(f, st.Size())
	if err != nil {
		return ModelInfo{}, fmt.Errorf("infer: read model %s: %w", path, err)
	}
	return mi, nil
}

// Inspect reads the inputs and outputs an ONNX model of size bytes
// declares. Dynamic dimensions are -1. It fails on anything that is not a
// well-formed ModelProto with a graph.
func Inspect(r io.ReaderAt, size int64) (ModelInfo, error) {
	p := &pbReader{r: r, size: size}
	var mi ModelInfo
	var graph *span
	err := p.fields(span{0, size}, 0, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.VarintType:
			mi.IRVersion = int64(f.v)
		case f.num == 7 && f.typ == protowire.BytesType:
			graph = &f.val
		}
		return nil
	})
	if err != nil {
		return mi, fmt.Errorf("%w: %w", ErrNotONNX, err)
	}
	if graph == nil {
		return mi, fmt.Errorf("%w: no graph", ErrNotONNX)
	}
	// Pass 1: inputs and outputs.
	var ins []TensorInfo
	err = p.fields(*graph, 1, func(f field) error {
		if f.typ != protowire.BytesType || (f.num != 11 && f.num != 12) {
			return nil
		}
		if len(ins)+len(mi.Outputs) >= 2*maxIO {
			return fmt.Errorf("more than %d graph inputs or outputs", maxIO)
		}
		ti, err := p.valueInfo(f.val)
		if err != nil {
			return err
		}
		if f.num == 11 {
			ins = append(ins, ti)
		} else {
			mi.Outputs = append(mi.Outputs, ti)
		}
		return nil
	})
	if err != nil {
		return mi, fmt.Errorf("%w: graph: %w", ErrNotONNX, err)
	}
	// Pass 2: graph inputs that an initializer provides are weights (IR < 4
	// lists every initializer as an input), not inputs to feed.
	fed := map[string]bool{}
	for _, in := range ins {
		fed[in.Name] = true
	}
	err = p.fields(*graph, 1, func(f field) error {
		if f.typ != protowire.BytesType || (f.num != 5 && f.num != 15) {
			return nil
		}
		var name string
		err := p.fields(f.val, 2, func(g field) error {
			if f.num == 5 && g.num == 8 && g.typ == protowire.BytesType { // TensorProto.name
				n, err := p.str(g.val)
				name = n
				return err
			}
			if f.num == 15 && g.num == 1 && g.typ == protowire.BytesType { // SparseTensorProto.values
				return p.fields(g.val, 3, func(h field) error {
					if h.num == 8 && h.typ == protowire.BytesType {
						n, err := p.str(h.val)
						name = n
						return err
					}
					return nil
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		delete(fed, name)
		return nil
	})
	if err != nil {
		return mi, fmt.Errorf("%w: graph: %w", ErrNotONNX, err)
	}
	for _, in := range ins {
		if fed[in.Name] {
			mi.Inputs = append(mi.Inputs, in)
		}
	}
	return mi, nil
}

// valueInfo reads a ValueInfoProto: name and, for a tensor, its element
// type and shape.
func (p *pbReader) valueInfo(s span) (TensorInfo, error) {
	var ti TensorInfo
	return ti, p.fields(s, 2, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			n, err := p.str(f.val)
			ti.Name = n
			return err
		case f.num == 2 && f.typ == protowire.BytesType: // TypeProto
			if f.val.n > maxTypeSize {
				return fmt.Errorf("value %q: type of %d bytes", ti.Name, f.val.n)
			}
			return p.fields(f.val, 3, func(g field) error {
				if g.num != 1 || g.typ != protowire.BytesType { // not tensor_type
					return nil
				}
				return p.fields(g.val, 4, func(h field) error {
					switch {
					case h.num == 1 && h.typ == protowire.VarintType: // elem_type
						ti.Float = h.v == 1 // TensorProto.FLOAT
					case h.num == 2 && h.typ == protowire.BytesType: // shape
						ti.Shape = []int64{}
						return p.fields(h.val, 5, func(d field) error {
							if d.num != 1 || d.typ != protowire.BytesType {
								return nil
							}
							if len(ti.Shape) >= maxRank {
								return fmt.Errorf("value %q: more than %d dimensions", ti.Name, maxRank)
							}
							dim := int64(-1)
							err := p.fields(d.val, 6, func(e field) error {
								if e.num == 1 && e.typ == protowire.VarintType {
									dim = int64(e.v)
									if dim < 0 {
										return fmt.Errorf("value %q: negative dimension %d", ti.Name, dim)
									}
								}
								return nil
							})
							ti.Shape = append(ti.Shape, dim)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
}

// span is a byte range [off, off+n) of the file.
type span struct{ off, n int64 }

// field is one field of a message: its number, wire type, and its value
// (a varint, or the span of a length-delimited value).
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	val span
}

// pbReader walks protobuf messages in an io.ReaderAt, through a window of
// the file it reads ahead (so that a walk over many small fields costs one
// read per window, not one per field).
type pbReader struct {
	r      io.ReaderAt
	size   int64
	win    []byte
	winOff int64
}

const windowBytes = 64 << 10

// at returns up to n bytes from off (fewer at the end of the file).
func (p *pbReader) at(off int64, n int) ([]byte, error) {
	if off < p.winOff || off+int64(n) > p.winOff+int64(len(p.win)) {
		if p.win == nil {
			p.win = make([]byte, windowBytes)
		}
		k := min(int64(windowBytes), p.size-off)
		if k <= 0 {
			return nil, io.ErrUnexpectedEOF
		}
		p.win = p.win[:k]
		if got, err := p.r.ReadAt(p.win, off); int64(got) < k {
			p.win = p.win[:0]
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		p.winOff = off
	}
	i := off - p.winOff
	return p.win[i:min(i+int64(n), int64(len(p.win)))], nil
}

// fields calls fn for each field of the message in s. Lengths are checked
// against the enclosing span before anything is read from them.
func (p *pbReader) fields(s span, depth int, fn func(field) error) error {
	if depth > maxDepthPB {
		return errors.New("messages nested too deeply")
	}
	off, end := s.off, s.off+s.n
	varint := func() (uint64, error) {
		k := min(int64(binaryVarintMax), end-off)
		if k <= 0 {
			return 0, io.ErrUnexpectedEOF
		}
		b, err := p.at(off, int(k))
		if err != nil {
			return 0, err
		}
		if int64(len(b)) < k {
			return 0, io.ErrUnexpectedEOF
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		off += int64(n)
		return v, nil
	}
	for off < end {
		tag, err := varint()
		if err != nil {
			return fmt.Errorf("field header at byte %d: %w", off, err)
		}
		num, typ := protowire.DecodeTag(tag)
		if num < protowire.MinValidNumber {
			return fmt.Errorf("field number %d at byte %d", num, off)
		}
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			if f.v, err = varint(); err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
		case protowire.Fixed32Type, protowire.Fixed64Type:
			w := int64(4)
			if typ == protowire.Fixed64Type {
				w = 8
			}
			if end-off < w {
				return fmt.Errorf("field %d: %w", num, io.ErrUnexpectedEOF)
			}
			off += w
		case protowire.BytesType:
			n, err := varint()
			if err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
			if n > uint64(end-off) {
				return fmt.Errorf("field %d: %d bytes declared, %d left: %w", num, n, end-off, io.ErrUnexpectedEOF)
			}
			f.val = span{off, int64(n)}
			off += int64(n)
		default:
			return fmt.Errorf("field %d: wire type %d (groups are not used by ONNX)", num, typ)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

const binaryVarintMax = 10

// str reads a string field of at most maxNameLen bytes.
func (p *pbReader) str(s span) (string, error) {
	if s.n > maxNameLen {
		return "", fmt.Errorf("a name of %d bytes", s.n)
	}
	b, err := p.at(s.off, int(s.n))
	if err != nil {
		return "", fmt.Errorf("name: %w", err)
	}
	if int64(len(b)) < s.n {
		return "", fmt.Errorf("name: %w", io.ErrUnexpectedEOF)
	}
	return string(b), nil
}
