package checkpoint

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"dira/data"
	"dira/internal/atomicfile"
	"dira/internal/bounded"
	"dira/internal/npy"
	"dira/statedict"
)

// Format names the layout of a .ckpt file.
const Format = "dira-checkpoint/1"

// Meta is a checkpoint's meta.json: where training stands and what made it.
//
// There is no generator state to save: every random draw of training is a
// pure function of the run seed and a position (data augmentation of
// (epoch, image index), epoch order of the epoch, the shuffle-BN permutation of
// the step; initial weights and queue of the seed), so Epoch, Position and
// Step are the RNG state.
type Meta struct {
	Format    string        `json:"format"`
	Stage     string        `json:"stage"`
	Epoch     int           `json:"epoch"`      // epoch in progress (== epochs when the stage is done)
	Position  data.Position `json:"position"`   // next batch of Epoch
	Step      int64         `json:"step"`       // optimiser steps done in this stage
	BestLoss  float64       `json:"best_loss"`  // lowest validation loss so far
	BestEpoch int           `json:"best_epoch"` // its epoch; -1 before the first validation
	AdamSteps int64         `json:"adam_steps"`
	// EpochSums and EpochSteps are the running sums of the logged loss
	// terms over the steps of Epoch done so far, so that a mid-epoch resume
	// reports the epoch means an uninterrupted run reports.
	EpochSums  map[string]float64 `json:"epoch_sums,omitempty"`
	EpochSteps int                `json:"epoch_steps,omitempty"`
	Config     string             `json:"config"` // the resolved run config (YAML)
	Saved      time.Time          `json:"saved"`
	// Extra is state only one stage kind keeps (a fine-tuning trial's
	// schedule, say), as that kind's own JSON.
	Extra json.RawMessage `json:"extra,omitempty"`
}

// Tensor groups inside a checkpoint.
const (
	GroupModel = "model/" // model.MoCo parameters and buffers (official names, no "module.")
	GroupDisc  = "disc/"  // discriminator
	GroupSGD   = "sgd/"   // SGD momentum buffers, keyed by parameter name
	GroupAdamM = "adam_m/"
	GroupAdamV = "adam_v/"
)

// Entry is one tensor to write. Value makes its statedict copy when the
// writer reaches it, so only one tensor at a time is held twice in memory.
type Entry struct {
	Name  string
	Value func() (statedict.Tensor, error)
}

// Write writes meta and the entries to path atomically: a crash leaves the
// previous file intact and no partial file under path. It returns the file's
// sha256 (hex), computed while writing, for the run manifest. meta.Format and
// meta.Saved are set here.
func Write(path string, meta Meta, entries []Entry) (sum string, err error) {
	meta.Format = Format
	meta.Saved = time.Now().UTC()
	h := sha256.New()
	err = atomicfile.Write(path, 0o644, func(w io.Writer) error {
		zw := zip.NewWriter(io.MultiWriter(w, h))
		mj, err := json.MarshalIndent(meta, "", "  ")
		if err != nil {
			return err
		}
		if err := writeEntry(zw, "meta.json", mj); err != nil {
			return err
		}
		var buf bytes.Buffer
		for _, e := range entries {
			t, err := e.Value()
			if err != nil {
				return fmt.Errorf("tensor %s: %w", e.Name, err)
			}
			buf.Reset()
			if err := npy.Write(&buf, toNPY(t)); err != nil {
				return fmt.Errorf("tensor %s: %w", e.Name, err)
			}
			if err := writeEntry(zw, "tensors/"+e.Name+".npy", buf.Bytes()); err != nil {
				return err
			}
		}
		return zw.Close()
	})
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Values is an Entry for a tensor already in Go memory.
func Values(name string, t statedict.Tensor) Entry {
	return Entry{Name: name, Value: func() (statedict.Tensor, error) { return t, nil }}
}

func writeEntry(zw *zip.Writer, name string, b []byte) error {
	f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return err
}

func toNPY(t statedict.Tensor) npy.Array {
	shape := make([]int, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int(d)
	}
	if t.DType == statedict.Int64 {
		return npy.Array{Shape: shape, Data: t.I64}
	}
	return npy.Array{Shape: shape, Data: t.F32}
}

// File is a checkpoint read back: its meta and its tensors in file order
// (names with their group prefix).
type File struct {
	Path    string
	Meta    Meta
	Tensors statedict.StateDict
}

// ErrNotCheckpoint marks a file that is not a readable dira checkpoint.
var ErrNotCheckpoint = errors.New("not a dira checkpoint")

// Caps on what Read allocates for one checkpoint, whatever the file
// declares. The largest tensor of the official configuration is the MoCo
// queue, 128 x 65536 float32 values (32 MiB); a ResNet-50 run's checkpoint
// with optimiser state holds well under 1 GiB.
const (
	DefaultMaxTensorBytes = 256 << 20
	DefaultMaxTotalBytes  = 4 << 30
	// maxMetaBytes bounds meta.json (a resolved config is a few kilobytes).
	maxMetaBytes = 16 << 20
)

// Limits bounds what ReadWith allocates. Zero fields take the defaults.
type Limits struct {
	MaxTensorBytes int64 // one tensor's data
	MaxTotalBytes  int64 // all tensors' data together
	// Expect, when set, is asked about each tensor (full name with its group
	// prefix, shape, dtype) before its data is read; an error refuses the
	// file. A caller that knows the networks it loads into (model.Params
	// ShapeOf) refuses foreign or oversized tensors here, before they cost
	// memory.
	Expect func(name string, shape []int64, dtype statedict.DType) error
}

// Read reads a checkpoint file with the default limits; see ReadWith.
func Read(path string) (*File, error) { return ReadWith(path, Limits{}) }

// ReadWith reads a checkpoint file; a missing, truncated, foreign or
// oversized file gives an error that names it (and the tensor). Every size
// the file declares is checked before anything is allocated from it: each
// zip entry against what its compressed bytes can hold, each tensor's npy
// header against its entry's size, against lim and against lim.Expect.
func ReadWith(path string, lim Limits) (*File, error) {
	// Stat before opening: opening a FIFO would wait for a writer.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("checkpoint %s: %w (not a regular file)", path, ErrNotCheckpoint)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w (%w)", path, ErrNotCheckpoint, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return ReadFrom(fh, st.Size(), path, lim)
}

// ReadFrom reads a checkpoint of size bytes from r; name (the file's path)
// prefixes every error. See ReadWith.
func ReadFrom(r io.ReaderAt, size int64, name string, lim Limits) (*File, error) {
	if lim.MaxTensorBytes <= 0 {
		lim.MaxTensorBytes = DefaultMaxTensorBytes
	}
	if lim.MaxTotalBytes <= 0 {
		lim.MaxTotalBytes = DefaultMaxTotalBytes
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w (%w)", name, ErrNotCheckpoint, err)
	}
	c := &File{Path: name}
	sawMeta := false
	seen := map[string]bool{}
	var total int64
	for _, f := range zr.File {
		isMeta := f.Name == "meta.json"
		isTensor := strings.HasPrefix(f.Name, "tensors/") && strings.HasSuffix(f.Name, ".npy")
		if !isMeta && !isTensor {
			continue
		}
		n, err := bounded.Entry(f, size)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", name, err)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %s: %w", name, f.Name, err)
		}
		if isMeta {
			if sawMeta {
				err = errors.New("a second meta.json")
			} else if n > maxMetaBytes {
				err = fmt.Errorf("%d bytes (at most %d are read)", n, maxMetaBytes)
			} else {
				var b []byte
				if b, err = io.ReadAll(io.LimitReader(rc, n)); err == nil {
					err = json.Unmarshal(b, &c.Meta)
				}
			}
			sawMeta = true
		} else {
			tname := strings.TrimSuffix(strings.TrimPrefix(f.Name, "tensors/"), ".npy")
			var t statedict.Tensor
			t, err = readTensor(rc, n, tname, lim, &total)
			if err == nil && seen[tname] {
				err = errors.New("a second tensor of this name")
			}
			seen[tname] = true
			c.Tensors = append(c.Tensors, t)
		}
		if err == nil {
			err = bounded.End(rc)
		}
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %s: %w", name, f.Name, truncated(err))
		}
	}
	if !sawMeta || c.Meta.Format != Format {
		return nil, fmt.Errorf("checkpoint %s: %w (format %q)", name, ErrNotCheckpoint, c.Meta.Format)
	}
	return c, nil
}

// readTensor reads one tensors/<name>.npy entry of n bytes, checking its
// header against n, the limits and lim.Expect before reading the data.
func readTensor(r io.Reader, n int64, name string, lim Limits, total *int64) (statedict.Tensor, error) {
	h, err := npy.ReadHeader(r)
	if err != nil {
		return statedict.Tensor{}, err
	}
	if err := h.Fits(n); err != nil {
		return statedict.Tensor{}, err
	}
	var dtype statedict.DType
	switch h.Descr {
	case "<f4":
		dtype = statedict.Float32
	case "<i8":
		dtype = statedict.Int64
	default:
		return statedict.Tensor{}, fmt.Errorf("dtype %s: a checkpoint holds float32 and int64 tensors", h.Descr)
	}
	nbytes, _ := h.DataBytes() // Fits checked it
	if nbytes > lim.MaxTensorBytes {
		return statedict.Tensor{}, fmt.Errorf("shape %v of %s is %d bytes, more than the %d a checkpoint tensor may have", h.Shape, h.Descr, nbytes, lim.MaxTensorBytes)
	}
	if *total += nbytes; *total > lim.MaxTotalBytes {
		return statedict.Tensor{}, fmt.Errorf("the tensors so far need %d bytes, more than the %d a checkpoint may hold", *total, lim.MaxTotalBytes)
	}
	if lim.Expect != nil {
		if err := lim.Expect(name, bounded.Ints(h.Shape), dtype); err != nil {
			return statedict.Tensor{}, err
		}
	}
	a, err := npy.ReadData(r, h, true)
	if err != nil {
		return statedict.Tensor{}, err
	}
	return fromNPY(name, a)
}

// truncated says so when a read stopped short.
func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "truncated") {
		return fmt.Errorf("truncated: %w", err)
	}
	return err
}

func fromNPY(name string, a npy.Array) (statedict.Tensor, error) {
	t := statedict.Tensor{Name: name, Shape: make([]int64, len(a.Shape))}
	for i, d := range a.Shape {
		t.Shape[i] = int64(d)
	}
	switch d := a.Data.(type) {
	case []float32:
		t.F32 = d
	case []int64:
		t.DType, t.I64 = statedict.Int64, d
	default:
		return t, fmt.Errorf("dtype %T: a checkpoint holds float32 and int64 tensors", a.Data)
	}
	return t, t.Check()
}

// Group returns the tensors of a group with the group prefix removed, in file
// order.
func (c *File) Group(group string) statedict.StateDict { return c.Tensors.Prefixed(group) }

// Has reports whether the checkpoint holds a tensor of that full name.
func (c *File) Has(name string) bool {
	_, ok := c.Tensors.Get(name)
	return ok
}
