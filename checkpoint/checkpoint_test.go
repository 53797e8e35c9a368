package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"dira/data"
	"dira/statedict"
)

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "last.ckpt")
	w := statedict.Tensor{Name: GroupModel + "w", Shape: []int64{2, 3}, F32: []float32{1, 2, 3, 4, 5, 6}}
	n := statedict.Tensor{Name: GroupModel + "n", Shape: []int64{}, DType: statedict.Int64, I64: []int64{1 << 40}}
	meta := Meta{Stage: "warmup", Epoch: 3, Position: data.Position{Batch: 2}, Step: 17, BestEpoch: 1,
		EpochSums: map[string]float64{"loss": 0.1 + 0.2}, EpochSteps: 2, Extra: []byte(`{"trial":1}`)}
	sum, err := Write(path, meta, []Entry{Values(w.Name, w), Values(n.Name, n)})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 64 {
		t.Errorf("sha256 %q", sum)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	var extra bytes.Buffer
	json.Compact(&extra, f.Meta.Extra)
	if f.Meta.Format != Format || f.Meta.Step != 17 || f.Meta.Position.Batch != 2 || f.Meta.EpochSums["loss"] != 0.1+0.2 ||
		f.Meta.EpochSteps != 2 || extra.String() != `{"trial":1}` || f.Meta.Saved.IsZero() {
		t.Errorf("meta read back: %+v", f.Meta)
	}
	if got := f.Group(GroupModel); !slices.Equal(got.Names(), []string{"w", "n"}) || !slices.Equal(got[0].F32, w.F32) ||
		!slices.Equal(got[1].I64, n.I64) || len(got[1].Shape) != 0 {
		t.Errorf("tensors read back: %+v", got)
	}
	if !f.Has(GroupModel+"w") || f.Has("w") {
		t.Errorf("Has")
	}
}

func TestReadRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.ckpt")
	os.WriteFile(junk, []byte("not a zip"), 0o644)
	for _, p := range []string{junk, filepath.Join(dir, "missing.ckpt")} {
		_, err := Read(p)
		if !errors.Is(err, ErrNotCheckpoint) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want ErrNotCheckpoint naming the file", p, err)
		}
	}
	// A value that fails mid-write leaves no file under the final name.
	path := filepath.Join(dir, "last.ckpt")
	_, err := Write(path, Meta{}, []Entry{{Name: "x", Value: func() (statedict.Tensor, error) { return statedict.Tensor{}, errors.New("boom") }}})
	if err == nil || !strings.Contains(err.Error(), "tensor x: boom") {
		t.Errorf("failing entry: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a failed write left %s", path)
	}
}
