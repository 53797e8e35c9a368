package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"strings"

	"github.com/sugarme/gotch/pickle"

	"dira/statedict"
)

// ErrNotPyTorch marks a file that torch.load could not read either.
var ErrNotPyTorch = errors.New("not a torch.save file")

// File is what torch.load returns for a state_dict file, reduced to what
// dira uses: the state_dict in file order, and the wrapper's epoch and arch
// when the file is a training checkpoint.
type File struct {
	Path string
	// Wrapped is true for a dict holding 'state_dict' (checkpoint.pth,
	// D_checkpoint.pth); false for a bare state_dict (best_checkpoint.pth,
	// unet.pth, resnet50.pth, torchvision and smp files).
	Wrapped bool
	// Entries lists the wrapper's keys ("epoch", "arch", "state_dict",
	// "optimizer", "best_loss"); nil for a bare state_dict.
	Entries []string
	// Epoch is the wrapper's 'epoch' (epochs completed: the official code
	// saves e+1), or -1 when the file has none.
	Epoch int
	// Arch is the wrapper's 'arch' ("resnet50"), or "".
	Arch      string
	StateDict statedict.StateDict
}

// Names lists the state_dict's keys in file order.
func (f *File) Names() []string { return f.StateDict.Names() }

// ReadFile reads a torch.save file: a state_dict (an OrderedDict of
// tensors) or a dict that holds one under 'state_dict', in the zip format
// (PyTorch >= 1.6) or the legacy one. Every error names the file.
//
// gotch's pickle.Decode reads only a flat state_dict and re-shapes 0-d
// tensors to [1]; this walks the unpickled objects itself, keeps file order
// and true shapes, and copies strided storages into C order.
func ReadFile(path string) (f *File, err error) {
	defer func() {
		// gotch's unpickler panics on some inputs (a tar archive, legacy
		// storage views); report them as a bad file, not a crash.
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("transfer: read %s: %w (%v)", path, ErrNotPyTorch, r)
		}
	}()
	if err := sniff(path); err != nil {
		return nil, err
	}
	obj, err := pickle.LoadWithUnpickler(path, pickle.NewUnpickler)
	if err != nil {
		return nil, fmt.Errorf("transfer: read %s: %w (%w)", path, ErrNotPyTorch, err)
	}
	f = &File{Path: path, Epoch: -1}
	sd := obj
	if d, ok := obj.(*pickle.Dict); ok {
		if v, ok := d.Get("state_dict"); ok {
			f.Wrapped, sd = true, v
			for _, e := range *d {
				k, _ := e.Key.(string)
				f.Entries = append(f.Entries, k)
				switch k {
				case "epoch":
					if n, ok := toInt(e.Value); ok {
						f.Epoch = n
					}
				case "arch":
					f.Arch, _ = e.Value.(string)
				}
			}
		}
	}
	if f.StateDict, err = stateDict(sd); err != nil {
		return nil, fmt.Errorf("transfer: read %s: %w", path, err)
	}
	if len(f.StateDict) == 0 {
		return nil, fmt.Errorf("transfer: read %s: the state_dict is empty", path)
	}
	return f, nil
}

// sniff rejects files that are neither a zip archive (torch.save since 1.6)
// nor a pickle stream (the legacy format starts with the PROTO opcode), and
// TorchScript archives, before gotch's reader sees them: its legacy path
// loops for ever on an empty file.
func sniff(path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("transfer: %w", err) // *PathError names the file
	}
	defer fh.Close()
	var b [4]byte
	n, _ := io.ReadFull(fh, b[:])
	switch {
	case n == 4 && bytes.Equal(b[:], []byte("PK\x03\x04")):
		return nil
	case n >= 2 && b[0] == 0x80 && b[1] >= 2:
		return nil
	case n == 0:
		return fmt.Errorf("transfer: read %s: empty file: %w", path, ErrNotPyTorch)
	}
	return fmt.Errorf("transfer: read %s: %w (neither a zip archive nor a pickle stream)", path, ErrNotPyTorch)
}

// stateDict converts an unpickled state_dict (OrderedDict, or a plain dict
// of tensors) into tensors in order.
func stateDict(obj any) (statedict.StateDict, error) {
	type kv struct {
		k any
		v any
	}
	var entries []kv
	switch d := obj.(type) {
	case *pickle.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			oe := e.Value.(*pickle.OrderedDictEntry)
			entries = append(entries, kv{oe.Key, oe.Value})
		}
	case *pickle.Dict:
		for _, e := range *d {
			entries = append(entries, kv{e.Key, e.Value})
		}
	default:
		return nil, fmt.Errorf("%w: expected a state_dict (OrderedDict of tensors), found %T", ErrNotPyTorch, obj)
	}
	out := make(statedict.StateDict, 0, len(entries))
	for _, e := range entries {
		name, ok := e.k.(string)
		if !ok {
			return nil, fmt.Errorf("%w: state_dict key %v is not a string", ErrNotPyTorch, e.k)
		}
		st, ok := e.v.(*pickle.StorageTensor)
		if !ok {
			return nil, fmt.Errorf("%w: state_dict entry %q is %T, not a tensor", ErrNotPyTorch, name, e.v)
		}
		t, err := tensorOf(name, st)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// tensorOf copies a (possibly strided, offset) view of a storage into a
// C-order tensor, as torch.as_strided(storage, size, stride, offset)
// followed by .contiguous() would.
func tensorOf(name string, st *pickle.StorageTensor) (t statedict.Tensor, err error) {
	t = statedict.Tensor{Name: name, Shape: slices.Clone(st.Size)}
	if t.Shape == nil {
		t.Shape = []int64{}
	}
	if len(st.Stride) != len(st.Size) {
		return t, fmt.Errorf("tensor %q: size %v and stride %v differ in rank", name, st.Size, st.Stride)
	}
	id := func(v float32) float32 { return v }
	switch d := st.Source.GetData().(type) {
	case []float32:
		t.F32, err = gather(d, id, st)
	case []float64:
		t.F32, err = gather(d, func(v float64) float32 { return float32(v) }, st)
	case []int64:
		t.DType = statedict.Int64
		t.I64, err = gather(d, func(v int64) int64 { return v }, st)
	case []int32:
		t.DType = statedict.Int64
		t.I64, err = gather(d, func(v int32) int64 { return int64(v) }, st)
	case []int16:
		t.DType = statedict.Int64
		t.I64, err = gather(d, func(v int16) int64 { return int64(v) }, st)
	case []int8:
		t.DType = statedict.Int64
		t.I64, err = gather(d, func(v int8) int64 { return int64(v) }, st)
	case []uint8:
		t.DType = statedict.Int64
		t.I64, err = gather(d, func(v uint8) int64 { return int64(v) }, st)
	case []bool:
		t.DType = statedict.Int64
		t.I64, err = gather(d, func(v bool) int64 {
			if v {
				return 1
			}
			return 0
		}, st)
	default:
		return t, fmt.Errorf("tensor %q: unsupported storage %T", name, d)
	}
	if err != nil {
		return t, fmt.Errorf("tensor %q: %w", name, err)
	}
	return t, nil
}

// gather reads the elements of the view st of src in C order, converted.
func gather[S, D any](src []S, conv func(S) D, st *pickle.StorageTensor) ([]D, error) {
	n := int64(1)
	for _, s := range st.Size {
		n *= s
	}
	out := make([]D, n)
	if n == 0 {
		return out, nil
	}
	last, contiguous, want := st.StorageOffset, true, int64(1)
	for i := len(st.Size) - 1; i >= 0; i-- {
		last += (st.Size[i] - 1) * st.Stride[i]
		if st.Size[i] != 1 && st.Stride[i] != want {
			contiguous = false
		}
		want *= st.Size[i]
	}
	if st.StorageOffset < 0 || last >= int64(len(src)) {
		return nil, fmt.Errorf("view (offset %d, size %v, stride %v) runs past its storage of %d elements", st.StorageOffset, st.Size, st.Stride, len(src))
	}
	if contiguous {
		for i, v := range src[st.StorageOffset : st.StorageOffset+n] {
			out[i] = conv(v)
		}
		return out, nil
	}
	idx := make([]int64, len(st.Size))
	for k := range out {
		off := st.StorageOffset
		for i, j := range idx {
			off += j * st.Stride[i]
		}
		out[k] = conv(src[off])
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < st.Size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, nil
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case *big.Int:
		if n.IsInt64() {
			return int(n.Int64()), true
		}
	}
	return 0, false
}

// describe lists a file's first keys for error messages.
func describe(names []string) string {
	const n = 6
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, ... (%d keys)", strings.Join(names[:n], ", "), len(names))
}
