package transfer

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"strings"

	"dira/internal/torchsave"
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
// (PyTorch >= 1.6, stored or deflated records) or the legacy one. Every
// error names the file, and the tensor when one is at fault; a file that
// ends early is reported as truncated.
//
// The file is read by package torchsave, which executes nothing and checks
// every size the file declares before allocating from it; only the
// state_dict's storages are read (an optimizer's are not). 0-d tensors keep
// their shape, and strided views are copied into C order.
func ReadFile(path string) (*File, error) {
	// Stat before opening: opening a FIFO would wait for a writer.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("transfer: read %s: %w (not a regular file)", path, ErrNotPyTorch)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err) // *PathError names the file
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	return Read(fh, st.Size(), path, torchsave.Limits{})
}

// Read reads a torch.save file of size bytes from r, named name in errors,
// within lim (zero fields: torchsave's defaults). See ReadFile.
func Read(r io.ReaderAt, size int64, name string, lim torchsave.Limits) (*File, error) {
	tf, err := torchsave.Open(r, size, lim)
	if err != nil {
		return nil, fmt.Errorf("transfer: read %s: %w: %w", name, ErrNotPyTorch, err)
	}
	f := &File{Path: name, Epoch: -1}
	sd := tf.Root
	if d, ok := tf.Root.(*torchsave.Dict); ok {
		if v, ok := d.Get("state_dict"); ok {
			f.Wrapped, sd = true, v
			for i, key := range d.Keys {
				k, _ := key.(string)
				f.Entries = append(f.Entries, k)
				switch k {
				case "epoch":
					if n, ok := toInt(d.Values[i]); ok {
						f.Epoch = n
					}
				case "arch":
					f.Arch, _ = d.Values[i].(string)
				}
			}
		}
	}
	if f.StateDict, err = stateDict(tf, sd); err != nil {
		return nil, fmt.Errorf("transfer: read %s: %w", name, err)
	}
	if len(f.StateDict) == 0 {
		return nil, fmt.Errorf("transfer: read %s: the state_dict is empty", name)
	}
	return f, nil
}

// stateDict reads an unpickled state_dict (OrderedDict, or a plain dict of
// tensors) into tensors in order.
func stateDict(tf *torchsave.File, obj any) (statedict.StateDict, error) {
	d, ok := obj.(*torchsave.Dict)
	if !ok {
		return nil, fmt.Errorf("%w: expected a state_dict (OrderedDict of tensors), found %s", ErrNotPyTorch, pyType(obj))
	}
	out := make(statedict.StateDict, 0, len(d.Keys))
	for i, key := range d.Keys {
		name, ok := key.(string)
		if !ok {
			return nil, fmt.Errorf("%w: state_dict key %s is not a string", ErrNotPyTorch, pyType(key))
		}
		st, ok := d.Values[i].(*torchsave.Tensor)
		if !ok {
			return nil, fmt.Errorf("%w: state_dict entry %q is %s, not a tensor", ErrNotPyTorch, name, pyType(d.Values[i]))
		}
		t := statedict.Tensor{Name: name, Shape: slices.Clone(st.Shape)}
		var err error
		if st.Storage.DType.IsFloat() {
			t.F32, err = tf.Float32s(st)
		} else {
			t.DType = statedict.Int64
			t.I64, err = tf.Int64s(st)
		}
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// pyType names an unpickled value's type for error messages.
func pyType(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case *torchsave.Dict:
		return "a dict"
	case *torchsave.List:
		return "a list"
	case torchsave.Tuple:
		return "a tuple"
	case *torchsave.Object:
		return "a " + x.Class.String() + " object"
	case string:
		return fmt.Sprintf("the string %q", x)
	}
	return fmt.Sprintf("a %T", v)
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
