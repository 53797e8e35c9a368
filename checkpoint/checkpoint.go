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
	"strings"
	"time"

	"dira/data"
	"dira/internal/atomicfile"
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

// Read reads a checkpoint file; a missing, truncated or foreign file gives an
// error that names it.
func Read(path string) (*File, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w (%w)", path, ErrNotCheckpoint, err)
	}
	defer zr.Close()
	c := &File{Path: path}
	sawMeta := false
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %s: %w", path, f.Name, err)
		}
		switch {
		case f.Name == "meta.json":
			err = json.NewDecoder(rc).Decode(&c.Meta)
			sawMeta = true
		case strings.HasPrefix(f.Name, "tensors/") && strings.HasSuffix(f.Name, ".npy"):
			var a npy.Array
			a, err = npy.Read(rc)
			if err == nil {
				name := strings.TrimSuffix(strings.TrimPrefix(f.Name, "tensors/"), ".npy")
				var t statedict.Tensor
				t, err = fromNPY(name, a)
				c.Tensors = append(c.Tensors, t)
			}
		}
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %s: %w", path, f.Name, err)
		}
	}
	if !sawMeta || c.Meta.Format != Format {
		return nil, fmt.Errorf("checkpoint %s: %w (format %q)", path, ErrNotCheckpoint, c.Meta.Format)
	}
	return c, nil
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
