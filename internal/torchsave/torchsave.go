package torchsave

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"

	"dira/internal/bounded"
)

// ErrTruncated marks a file that ends before what it declares.
var ErrTruncated = errors.New("truncated")

// Default limits. A ResNet-50 DiRA checkpoint's pickle is about 200 KB;
// its largest tensor, the MoCo queue (128 x 65536 float32), is 32 MiB.
const (
	DefaultMaxPickleBytes = 4 << 20
	DefaultMaxTensorBytes = 256 << 20
	DefaultMaxTotalBytes  = 4 << 30
)

// Limits bounds what a File allocates; zero fields take the defaults.
type Limits struct {
	// MaxPickleBytes bounds the pickle (data.pkl, or the legacy stream's
	// pickles); the objects built from it take memory in proportion.
	MaxPickleBytes int64
	// MaxTensorBytes bounds one storage's bytes in the file and one
	// tensor's values as read (float32 or int64).
	MaxTensorBytes int64
	// MaxTotalBytes bounds the values of all tensors read from the file.
	MaxTotalBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxPickleBytes <= 0 {
		l.MaxPickleBytes = DefaultMaxPickleBytes
	}
	if l.MaxTensorBytes <= 0 {
		l.MaxTensorBytes = DefaultMaxTensorBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	return l
}

// DType is a storage's element type.
type DType int

// The storage types torch.save writes for dense tensors.
const (
	Float32 DType = iota + 1
	Float64
	Float16
	BFloat16
	Int64
	Int32
	Int16
	Int8
	Uint8
	Bool
)

var dtypes = map[string]DType{
	"FloatStorage": Float32, "DoubleStorage": Float64, "HalfStorage": Float16, "BFloat16Storage": BFloat16,
	"LongStorage": Int64, "IntStorage": Int32, "ShortStorage": Int16, "CharStorage": Int8,
	"ByteStorage": Uint8, "BoolStorage": Bool, "UntypedStorage": Uint8,
}

// Size is the bytes per element in the file.
func (d DType) Size() int64 {
	switch d {
	case Float64, Int64:
		return 8
	case Float32, Int32:
		return 4
	case Float16, BFloat16, Int16:
		return 2
	}
	return 1
}

// IsFloat reports a floating-point type (read with Float32s; the others
// with Int64s).
func (d DType) IsFloat() bool { return d >= Float32 && d <= BFloat16 }

func (d DType) String() string {
	for k, v := range dtypes {
		if v == d && k != "UntypedStorage" {
			return strings.TrimSuffix(k, "Storage")
		}
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// storageType is what a torch.<Type>Storage global resolves to.
type storageType struct{ dtype DType }

// Storage is one storage of the file: its elements are read only when a
// tensor's values are asked for.
type Storage struct {
	DType    DType
	Key      string // the record name under archive/data/, or the legacy key
	Numel    int64
	Location string // "cpu", "cuda:0", ...
	// Where the bytes are: a zip record, or an offset in a legacy file.
	rec     *zip.File
	offset  int64
	located bool
}

// Tensor is a strided view of a storage, as torch._utils._rebuild_tensor_v2
// makes it.
type Tensor struct {
	Storage      *Storage
	Offset       int64
	Shape        []int64
	Stride       []int64
	RequiresGrad bool
	// span is the range of storage elements the view touches, [lo, hi).
	lo, hi int64
}

// Numel is the number of elements of the view.
func (t *Tensor) Numel() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d // checked not to overflow when the tensor was built
	}
	return n
}

// File is a torch.save file opened for reading: Root is the object saved
// (a state_dict, a dict holding one, ...). Tensor values are read from the
// underlying reader on demand, so it must stay open while they are.
type File struct {
	Root   any
	Legacy bool // the pre-1.6 stream layout
	r      io.ReaderAt
	size   int64
	lim    Limits
	read   int64 // bytes of tensor values handed out so far
	// problems are the first things found wrong with storages and views,
	// reported with the path to the tensor once the object is built.
	problems []problem
}

type problem struct {
	obj any // *Storage or *Tensor
	err error
}

var zipMagic = []byte("PK\x03\x04")

// Open reads the structure of a torch.save file of size bytes from r: the
// pickle, and where each storage's bytes are. It checks every size against
// the file and lim before anything is allocated from it.
func Open(r io.ReaderAt, size int64, lim Limits) (*File, error) {
	f := &File{r: r, size: size, lim: lim.withDefaults()}
	var head [512]byte
	n, err := r.ReadAt(head[:], 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	switch {
	case n == 0:
		return nil, errors.New("empty file")
	case bytes.HasPrefix(head[:n], zipMagic):
		err = f.openZip()
	case n >= 262 && string(head[257:262]) == "ustar":
		return nil, errors.New("a tar archive: the tar layout of PyTorch before 0.4 is not supported")
	case head[0] == 0x80 && n >= 2 && head[1] >= 2 && head[1] <= 5:
		f.Legacy = true
		err = f.openLegacy()
	default:
		return nil, errors.New("neither a zip archive nor a pickle stream")
	}
	if err != nil {
		return nil, err
	}
	if len(f.problems) > 0 {
		p := f.problems[0]
		return nil, fmt.Errorf("%s: %w", f.where(p.obj), p.err)
	}
	return f, nil
}

func (f *File) problem(obj any, format string, args ...any) {
	if len(f.problems) < 8 {
		f.problems = append(f.problems, problem{obj, fmt.Errorf(format, args...)})
	}
}

// openZip reads the zip layout: archive/data.pkl, archive/data/<key>.
func (f *File) openZip() error {
	zr, err := zip.NewReader(f.r, f.size)
	if err != nil {
		return fmt.Errorf("a zip archive without a readable central directory: %w (or damaged): %w", ErrTruncated, err)
	}
	if len(zr.File) == 0 {
		return errors.New("an empty zip archive")
	}
	prefix, _, ok := strings.Cut(zr.File[0].Name, "/")
	if !ok {
		return fmt.Errorf("zip record %q is not in a folder, as torch.save's records are", zr.File[0].Name)
	}
	records := map[string]*zip.File{}
	for _, z := range zr.File {
		if rest, ok := strings.CutPrefix(z.Name, prefix+"/"); ok {
			records[rest] = z
		}
	}
	if _, ok := records["constants.pkl"]; ok {
		return errors.New("a TorchScript archive (torch.jit.save): load it in Python and torch.save its state_dict()")
	}
	if bo, ok := records["byteorder"]; ok {
		b, err := f.record(bo, 16)
		if err != nil {
			return err
		}
		if string(b) != "little" {
			return fmt.Errorf("byte order %q: only little-endian files are read", truncate(string(b), 16))
		}
	}
	pkl, ok := records["data.pkl"]
	if !ok {
		return fmt.Errorf("no %s/data.pkl in the zip archive", prefix)
	}
	b, err := f.record(pkl, f.lim.MaxPickleBytes)
	if err != nil {
		return err
	}
	storages := map[string]*Storage{}
	m := f.machine(func(pid any) (any, error) {
		t, ok := pid.(Tuple)
		if !ok || len(t) < 5 || t[0] != "storage" {
			return nil, fmt.Errorf("persistent id %s, want ('storage', type, key, location, numel)", typeName(pid))
		}
		st, ok := t[1].(storageType)
		key, ok2 := t[2].(string)
		loc, ok3 := t[3].(string)
		numel, ok4 := t[4].(int64)
		if !ok || !ok2 || !ok3 || !ok4 {
			return nil, errors.New("persistent id ('storage', type, key, location, numel) of other types")
		}
		if s, ok := storages[key]; ok {
			if s.DType != st.dtype || s.Numel != numel {
				return nil, fmt.Errorf("storage %q declared twice, as %d %s and as %d %s", key, s.Numel, s.DType, numel, st.dtype)
			}
			return s, nil
		}
		s := &Storage{DType: st.dtype, Key: key, Numel: numel, Location: loc, rec: records["data/"+key], located: true}
		storages[key] = s
		f.checkStorage(s)
		if s.rec == nil {
			f.problem(s, "storage %q: no record %s/data/%s in the zip archive", key, prefix, key)
		} else if n, err := bounded.Entry(s.rec, f.size); err != nil {
			f.problem(s, "storage %q: %w", key, withTruncated(err))
		} else if need := numel * st.dtype.Size(); numel >= 0 && need/st.dtype.Size() == numel && n < need {
			f.problem(s, "storage %q declares %d %s elements (%d bytes), its record holds %d bytes: %w", key, numel, st.dtype, need, n, ErrTruncated)
		}
		return s, nil
	})
	m.b = b
	root, _, err := m.run()
	if err != nil {
		return fmt.Errorf("data.pkl: %w", withTruncated(err))
	}
	f.Root = root
	return nil
}

// record reads a whole zip record of at most max bytes.
func (f *File) record(z *zip.File, max int64) ([]byte, error) {
	n, err := bounded.Entry(z, f.size)
	if err != nil {
		return nil, withTruncated(err)
	}
	if n > max {
		return nil, fmt.Errorf("%s: %d bytes (at most %d are read)", z.Name, n, max)
	}
	rc, err := z.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", z.Name, err)
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("%s: %w", z.Name, withTruncated(err))
	}
	if err := bounded.End(rc); err != nil {
		return nil, fmt.Errorf("%s: %w", z.Name, err)
	}
	return b, nil
}

// legacyMagic is the number torch.save's legacy layout starts with.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// openLegacy reads the legacy layout: five pickles (magic number, protocol
// version 1001, system info, the object, the sorted storage keys), then
// for each key the storage's element count (int64) and its bytes.
func (f *File) openLegacy() error {
	off := int64(0)
	next := func(what string, persistent func(any) (any, error)) (any, error) {
		n := min(f.size-off, f.lim.MaxPickleBytes)
		b := make([]byte, n)
		if k, err := f.r.ReadAt(b, off); k < len(b) {
			return nil, fmt.Errorf("%s: %w", what, withTruncated(err))
		}
		m := f.machine(persistent)
		m.b = b
		v, used, err := m.run()
		if err != nil {
			if errors.Is(err, ErrTruncated) && n == f.lim.MaxPickleBytes {
				return nil, fmt.Errorf("%s: longer than %d bytes", what, f.lim.MaxPickleBytes)
			}
			return nil, fmt.Errorf("%s: %w", what, withTruncated(err))
		}
		off += int64(used)
		return v, nil
	}
	magic, err := next("magic number", nil)
	if err != nil {
		return err
	}
	if n, ok := magic.(*big.Int); !ok || n.Cmp(legacyMagic) != 0 {
		return errors.New("a pickle stream, but not a torch.save file (no magic number)")
	}
	if v, err := next("protocol version", nil); err != nil {
		return err
	} else if v != int64(1001) {
		return fmt.Errorf("legacy protocol version %v, want 1001", v)
	}
	info, err := next("system info", nil)
	if err != nil {
		return err
	}
	if d, ok := info.(*Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le != true {
			return errors.New("written on a big-endian machine: only little-endian files are read")
		}
	}
	storages := map[string]*Storage{}
	root, err := next("object pickle", func(pid any) (any, error) {
		t, ok := pid.(Tuple)
		if !ok || len(t) == 0 {
			return nil, fmt.Errorf("persistent id %s, want a tuple", typeName(pid))
		}
		switch t[0] {
		case "module":
			return &Object{Class: Global{"torch.save", "module"}, Args: t[1:]}, nil
		case "storage":
		default:
			return nil, fmt.Errorf("persistent id of kind %v", t[0])
		}
		if len(t) != 6 {
			return nil, errors.New("persistent id ('storage', type, key, location, numel, view) of another length")
		}
		st, ok := t[1].(storageType)
		key, ok2 := t[2].(string)
		loc, ok3 := t[3].(string)
		numel, ok4 := t[4].(int64)
		if !ok || !ok2 || !ok3 || !ok4 {
			return nil, errors.New("persistent id ('storage', type, key, location, numel, view) of other types")
		}
		if t[5] != nil {
			return nil, errors.New("a storage view (PyTorch before 0.4): not supported")
		}
		if s, ok := storages[key]; ok {
			if s.DType != st.dtype || s.Numel != numel {
				return nil, fmt.Errorf("storage %q declared twice, as %d %s and as %d %s", key, s.Numel, s.DType, numel, st.dtype)
			}
			return s, nil
		}
		s := &Storage{DType: st.dtype, Key: key, Numel: numel, Location: loc}
		storages[key] = s
		f.checkStorage(s)
		return s, nil
	})
	if err != nil {
		return err
	}
	f.Root = root
	keys, err := next("storage keys", nil)
	if err != nil {
		return err
	}
	list, ok := keys.(*List)
	if !ok {
		return fmt.Errorf("storage keys: a %s, not a list", typeName(keys))
	}
	for _, k := range list.Items {
		key, _ := k.(string)
		s, ok := storages[key]
		if !ok {
			return fmt.Errorf("storage keys: %q is no storage of the object", truncate(fmt.Sprint(k), 40))
		}
		var hdr [8]byte
		if n, _ := f.r.ReadAt(hdr[:], off); n < 8 {
			f.problem(s, "storage %q: the file ends at byte %d, before its size: %w", key, f.size, ErrTruncated)
			break
		}
		numel := int64(binary.LittleEndian.Uint64(hdr[:]))
		if numel != s.Numel {
			f.problem(s, "storage %q: the file says %d elements, the pickle %d", key, numel, s.Numel)
			break
		}
		need := numel * s.DType.Size()
		if numel < 0 || need/s.DType.Size() != numel || need > f.size-off-8 {
			f.problem(s, "storage %q needs %d bytes at byte %d, the file has %d: %w", key, need, off+8, f.size, ErrTruncated)
			break
		}
		s.offset, s.located = off+8, true
		off += 8 + need
	}
	for _, s := range storages {
		if !s.located && len(f.problems) == 0 {
			f.problem(s, "storage %q: not in the file's storage list", s.Key)
		}
	}
	return nil
}

// checkStorage checks a storage's declared size against the limits.
func (f *File) checkStorage(s *Storage) {
	if _, err := bounded.Numel([]int64{s.Numel}, s.DType.Size()); err != nil {
		f.problem(s, "storage %q: %v", s.Key, err)
		return
	}
	if b := s.Numel * s.DType.Size(); b > f.lim.MaxTensorBytes {
		f.problem(s, "storage %q declares %d %s elements (%d bytes), more than the %d bytes a storage may have", s.Key, s.Numel, s.DType, b, f.lim.MaxTensorBytes)
	}
}

// machine makes a pickle machine that knows torch's globals.
func (f *File) machine(persistent func(any) (any, error)) *machine {
	return &machine{
		persistent: persistent,
		global: func(g Global) (any, bool) {
			if g.Module == "torch" {
				if d, ok := dtypes[g.Name]; ok {
					return storageType{d}, true
				}
			}
			return nil, false
		},
		call: f.call,
	}
}

// call interprets the callables of saved tensors and ordered dicts.
func (f *File) call(g Global, args []any) (any, bool, error) {
	switch g.String() {
	case "collections.OrderedDict":
		d := &Dict{Ordered: true}
		if len(args) == 1 {
			items, ok := args[0].(*List)
			if !ok {
				return nil, false, fmt.Errorf("argument is a %s, not a list of pairs", typeName(args[0]))
			}
			for _, it := range items.Items {
				kv, ok := it.(Tuple)
				if !ok || len(kv) != 2 {
					return nil, false, errors.New("argument is not a list of pairs")
				}
				if err := d.set(kv[0], kv[1]); err != nil {
					return nil, false, err
				}
			}
		} else if len(args) > 1 {
			return nil, false, fmt.Errorf("%d arguments", len(args))
		}
		return d, true, nil
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		if len(args) < 4 {
			return nil, false, fmt.Errorf("%d arguments, want storage, offset, size, stride", len(args))
		}
		t, err := f.rebuild(args)
		if err != nil {
			return nil, false, err
		}
		if len(args) > 4 {
			t.RequiresGrad = args[4] == true
		}
		return t, true, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(args) < 1 {
			return nil, false, errors.New("no arguments")
		}
		if t, ok := args[0].(*Tensor); ok {
			return t, true, nil
		}
		return nil, false, fmt.Errorf("data is a %s, not a tensor", typeName(args[0]))
	case "torch._tensor._rebuild_from_type_v2":
		// (func, type, args, state): a tensor subclass; rebuild the tensor.
		if len(args) >= 3 {
			if fn, ok := args[0].(Global); ok {
				if inner, ok := args[2].(Tuple); ok {
					return f.call(fn, inner)
				}
			}
		}
	}
	return nil, false, nil
}

// rebuild makes the view (storage, offset, size, stride) and checks it
// against its storage; a bad view is recorded as a problem, reported with
// the tensor's path once the object is built.
func (f *File) rebuild(args []any) (*Tensor, error) {
	s, ok := args[0].(*Storage)
	if !ok {
		return nil, fmt.Errorf("storage argument is a %s", typeName(args[0]))
	}
	off, ok := args[1].(int64)
	if !ok {
		return nil, fmt.Errorf("offset argument is a %s", typeName(args[1]))
	}
	shape, err := ints(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := ints(args[3], "stride")
	if err != nil {
		return nil, err
	}
	t := &Tensor{Storage: s, Offset: off, Shape: shape, Stride: stride}
	if len(stride) != len(shape) {
		f.problem(t, "size %v and stride %v differ in rank", shape, stride)
		return t, nil
	}
	n, err := bounded.Numel(shape, 8)
	if err != nil {
		f.problem(t, "%v", err)
		return t, nil
	}
	if n*outSize(s.DType) > f.lim.MaxTensorBytes {
		f.problem(t, "shape %v is %d values (%d bytes as read), more than the %d bytes a tensor may have", shape, n, n*outSize(s.DType), f.lim.MaxTensorBytes)
		return t, nil
	}
	if n == 0 {
		return t, nil
	}
	// The span of storage elements the view touches: strides may be zero
	// (expanded views) but not negative (torch has no negative strides).
	lo, hi := off, off+1
	for i, d := range shape {
		if stride[i] < 0 {
			f.problem(t, "negative stride %v", stride)
			return t, nil
		}
		if stride[i] > 0 && d-1 > (math.MaxInt64-hi)/stride[i] {
			f.problem(t, "view (offset %d, size %v, stride %v) overflows", off, shape, stride)
			return t, nil
		}
		hi += (d - 1) * stride[i]
	}
	if off < 0 || hi > s.Numel {
		f.problem(t, "view (offset %d, size %v, stride %v) runs past its storage of %d elements", off, shape, stride, s.Numel)
		return t, nil
	}
	if n > s.Numel {
		f.problem(t, "view (size %v, stride %v) has %d elements over a storage of %d: expanded views are not read (dira copies every tensor densely)", shape, stride, n, s.Numel)
		return t, nil
	}
	t.lo, t.hi = lo, hi
	return t, nil
}

func ints(v any, what string) ([]int64, error) {
	t, ok := v.(Tuple)
	if !ok {
		return nil, fmt.Errorf("%s argument is a %s, not a tuple", what, typeName(v))
	}
	out := make([]int64, len(t))
	for i, e := range t {
		n, ok := e.(int64)
		if !ok {
			return nil, fmt.Errorf("%s argument holds a %s", what, typeName(e))
		}
		out[i] = n
	}
	return out, nil
}

// outSize is the bytes per value as read: float32 for floating types,
// int64 for the others.
func outSize(d DType) int64 {
	if d.IsFloat() {
		return 4
	}
	return 8
}

// withTruncated adds ErrTruncated to an error that says a read ended early.
func withTruncated(err error) error {
	if err == nil || errors.Is(err, ErrTruncated) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return err
}
