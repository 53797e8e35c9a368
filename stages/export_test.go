package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/pipeline"
)

// TestExportStage trains one warmup step, exports its last checkpoint through
// the export stage, and checks the report; then a truncated and a foreign
// checkpoint give errors naming the file and write nothing.
func TestExportStage(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	cfg.Stages = cfg.Stages[:1]
	cfg.Stages[0].Epochs, cfg.Stages[0].StepsPerEpoch = 1, 1
	ex := pipeline.DefaultStage(pipeline.StageExport)
	ex.From, ex.Checkpoint = pipeline.StageWarmup, "last"
	cfg.Stages = append(cfg.Stages, ex)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "run")
	r, err := pipeline.Open(dir, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := NewTraining(cfg, cfg.Stages[0])
	if err := pipeline.Execute(t.Context(), r, []pipeline.Stage{tr, NewExport(cfg, ex)}); err != nil {
		t.Fatal(err)
	}
	var rep ExportReport
	b, err := os.ReadFile(filepath.Join(dir, "export", "export-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &rep)
	if !rep.Passed || len(rep.Checks) != 2 {
		t.Fatalf("report: %s", b)
	}
	for _, c := range rep.Checks {
		t.Logf("%s: ONNX Runtime vs Go max |diff| %.3g (tolerance %g)", c.File, c.MaxAbsDiff, rep.Tolerance)
	}
	for _, f := range []string{"encoder.onnx", "unet.onnx", "encoder.pth", "unet.pth"} {
		if _, err := os.Stat(filepath.Join(dir, "export", f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
	}

	good := filepath.Join(dir, "warmup", "last.ckpt")
	whole, _ := os.ReadFile(good)
	truncated := filepath.Join(base, "truncated.ckpt")
	os.WriteFile(truncated, whole[:len(whole)/2], 0o644)
	foreign := filepath.Join(base, "foreign.ckpt")
	os.WriteFile(foreign, []byte("not a checkpoint at all"), 0o644)
	for _, bad := range []string{truncated, foreign, filepath.Join(base, "missing.ckpt")} {
		out := filepath.Join(base, "out-"+filepath.Base(bad))
		_, err := ExportCheckpoint(bad, out, ExportOptions{})
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: err = %v, want an error naming the file", bad, err)
		}
		if ents, _ := os.ReadDir(out); len(ents) > 0 {
			t.Errorf("%s: %d files written to %s", bad, len(ents), out)
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(base, ".export-tmp-*")); len(tmps) > 0 {
		t.Errorf("temporary folders left: %v", tmps)
	}
}

// TestCheckpointSumMatchesFile: the sha256 the writer records while writing
// is the file's.
func TestCheckpointSumMatchesFile(t *testing.T) {
	runtime.LockOSThread()
	p := filepath.Join(t.TempDir(), "x.ckpt")
	x := ts.MustOnes([]int64{3, 4}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	sum, err := saveCheckpoint(p, Meta{Stage: "warmup"}, []namedTensor{{"model/x", x}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if want := sha256.Sum256(b); sum != hex.EncodeToString(want[:]) {
		t.Fatalf("recorded %s, file has %x", sum, want)
	}
	if _, err := LoadCheckpoint(p); err != nil {
		t.Fatal(err)
	}
}
