package stages

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
	"sort"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/data"
	"dira/internal/atomicfile"
	"dira/internal/npy"
	"dira/model"
)

// checkpointFormat names the layout of a .ckpt file: a zip archive (stored,
// not compressed) holding meta.json and one NumPy .npy file per tensor under
// tensors/, in state_dict order. NumPy reads every tensor of it.
const checkpointFormat = "dira-checkpoint/1"

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
	Config    string        `json:"config"` // the resolved run config (YAML)
	Saved     time.Time     `json:"saved"`
}

// Tensor groups inside a checkpoint.
const (
	groupModel = "model/" // model.MoCo parameters and buffers (official names, no "module.")
	groupDisc  = "disc/"  // discriminator
	groupSGD   = "sgd/"   // SGD momentum buffers, keyed by parameter name
	groupAdamM = "adam_m/"
	groupAdamV = "adam_v/"
)

// Checkpoint is an open checkpoint: meta plus tensor values by name.
type Checkpoint struct {
	Path    string
	Meta    Meta
	Tensors map[string]npy.Array
	order   []string
}

// namedTensor is one tensor to save.
type namedTensor struct {
	name string
	t    *ts.Tensor
}

// saveCheckpoint writes meta and tensors to path atomically: a crash leaves
// the previous file intact and no partial file under path. It returns the
// file's sha256 (hex), computed while writing, for the run manifest.
func saveCheckpoint(path string, meta Meta, tensors []namedTensor) (sum string, err error) {
	meta.Format = checkpointFormat
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
		for _, nt := range tensors {
			buf.Reset()
			if err := npy.Write(&buf, arrayOf(nt.t)); err != nil {
				return fmt.Errorf("tensor %s: %w", nt.name, err)
			}
			if err := writeEntry(zw, "tensors/"+nt.name+".npy", buf.Bytes()); err != nil {
				return err
			}
		}
		return zw.Close()
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeEntry(zw *zip.Writer, name string, b []byte) error {
	f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return err
}

// arrayOf copies a tensor into an npy array, keeping int64 tensors int64.
func arrayOf(t *ts.Tensor) npy.Array {
	sz := t.MustSize()
	shape := make([]int, len(sz))
	for i, d := range sz {
		shape[i] = int(d)
	}
	if t.DType() == gotch.Int64 {
		return npy.Array{Shape: shape, Data: t.Int64Values()}
	}
	return npy.Array{Shape: shape, Data: model.Values(t)}
}

// ErrNotCheckpoint marks a file that is not a readable dira checkpoint.
var ErrNotCheckpoint = errors.New("not a dira checkpoint")

// LoadCheckpoint reads a checkpoint file; a missing, truncated or foreign
// file gives an error that names it.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w (%w)", path, ErrNotCheckpoint, err)
	}
	defer zr.Close()
	c := &Checkpoint{Path: path, Tensors: map[string]npy.Array{}}
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
			name := strings.TrimSuffix(strings.TrimPrefix(f.Name, "tensors/"), ".npy")
			c.Tensors[name] = a
			c.order = append(c.order, name)
		}
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %s: %w", path, f.Name, err)
		}
	}
	if !sawMeta || c.Meta.Format != checkpointFormat {
		return nil, fmt.Errorf("checkpoint %s: %w (format %q)", path, ErrNotCheckpoint, c.Meta.Format)
	}
	return c, nil
}

// Names lists the tensors of a group (prefix removed), in file order.
func (c *Checkpoint) Names(group string) []string {
	var out []string
	for _, n := range c.order {
		if s, ok := strings.CutPrefix(n, group); ok {
			out = append(out, s)
		}
	}
	return out
}

// loadParams copies the group's tensors into ps. Every entry of ps must be
// in the checkpoint and every tensor of the group must have a place in ps,
// with the same shape; the error names each key that does not fit.
func (c *Checkpoint) loadParams(group string, ps *model.Params) error {
	var problems []string
	have := map[string]bool{}
	for _, name := range c.Names(group) {
		have[name] = true
		a := c.Tensors[group+name]
		if ps.Get(name) == nil {
			problems = append(problems, "unexpected key "+name)
			continue
		}
		if err := ps.SetData(name, shape64(a.Shape), a.Float32()); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, n := range ps.Names() {
		if !have[n] {
			problems = append(problems, "missing key "+n)
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("and %d more", len(problems)-10))
		}
		return fmt.Errorf("checkpoint %s: %s does not fit the configured networks: %s", c.Path, strings.TrimSuffix(group, "/"), strings.Join(problems, "; "))
	}
	return nil
}

// tensorOf makes a new tensor from a checkpoint array.
func (c *Checkpoint) tensorOf(name string) (*ts.Tensor, error) {
	a, ok := c.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: no tensor %s", c.Path, name)
	}
	return ts.NewTensorFromData(a.Float32(), shape64(a.Shape))
}

func shape64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
