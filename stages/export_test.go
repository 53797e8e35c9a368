package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"dira/checkpoint"
	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/model"
	"dira/pipeline"
	"dira/statedict"
)

// TestExportStage trains one warmup step, exports its last checkpoint through
// the export stage, and checks the report; then a truncated and a foreign
// checkpoint give errors naming the file and write nothing.
func TestExportStage(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	cfg.Stages = cfg.Stages[:1]
	training(cfg, 0).Epochs, training(cfg, 0).StepsPerEpoch = 1, 1
	ex := newStage[*pipeline.ExportStage](t, pipeline.StageExport)
	ex.From, ex.Checkpoint = pipeline.StageWarmup, "last"
	// int8 copies too, calibrated on 4 radiographs; 2 more are held out.
	calib := filepath.Join(base, "calib")
	os.Mkdir(calib, 0o755)
	for i := range 6 {
		writeRadiograph(t, filepath.Join(calib, fmt.Sprintf("%d.png", i)), 80, uint64(i))
	}
	ex.Precision, ex.Calibration, ex.CalibrationCount = "int8", calib, 4
	cfg.Stages = append(cfg.Stages, ex)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "run")
	if err := runStages(t, cfg, dir, Hooks{}); err != nil {
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
	man, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"encoder.onnx", "unet.onnx", "encoder.pth", "unet.pth", "encoder.int8.onnx", "unet.int8.onnx", "quantization-report.json"} {
		if _, err := os.Stat(filepath.Join(dir, "export", f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
		if !strings.Contains(string(man), `"export/`+f+`"`) {
			t.Errorf("manifest.json does not list export/%s", f)
		}
	}
	var q struct {
		Calibration struct{ Images int } `json:"calibration"`
		Models      []struct {
			File string
		} `json:"models"`
	}
	b, err = os.ReadFile(filepath.Join(dir, "export", "quantization-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &q); err != nil || q.Calibration.Images != 4 || len(q.Models) != 2 {
		t.Errorf("quantization-report.json (%v): %s", err, b)
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
// is the file's, and the file reads back.
func TestCheckpointSumMatchesFile(t *testing.T) {
	torchtest.Pin(t)
	p := filepath.Join(t.TempDir(), "x.ckpt")
	x := torch.Ones([]int64{3, 4}, gotch.Float)
	defer torch.Drop(x)
	sum, err := checkpoint.Write(p, checkpoint.Meta{Stage: "warmup"}, []checkpoint.Entry{{Name: "model/x",
		Value: func() (statedict.Tensor, error) { return model.TensorOf("model/x", x) }}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if want := sha256.Sum256(b); sum != hex.EncodeToString(want[:]) {
		t.Fatalf("recorded %s, file has %x", sum, want)
	}
	ck, err := checkpoint.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := ck.Tensors.Get("model/x"); !slices.Equal(e.F32, torch.Float32s(x)) {
		t.Errorf("values read back differ")
	}
}

// TestExportRefusesNonFiniteWeights: a checkpoint with an infinite weight
// is refused with an error naming the tensor, and nothing is written: no
// output folder, no temporary folder. Before, the export failed with
// "json: unsupported value: +Inf" and left an empty output folder.
func TestExportRefusesNonFiniteWeights(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	st, err := newState(cfg, pipeline.StageWarmup, training(cfg, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	const name = "encoder_q.backbone.encoder.layer2.0.conv1.weight"
	v, shape, err := st.moco.Params.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	v[5], v[9] = float32(math.Inf(1)), float32(math.NaN())
	if err := st.moco.Params.SetData(name, shape, v); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(base, "diverged.ckpt")
	if _, err := st.save(ck); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "export")
	_, err = ExportCheckpoint(ck, out, ExportOptions{})
	if err == nil || !strings.Contains(err.Error(), "tensor encoder.layer2.0.conv1.weight [128 64 3 3] is not finite: 2 of its 73728 values") ||
		!strings.Contains(err.Error(), "+Inf") || !strings.Contains(err.Error(), ck) {
		t.Fatalf("err = %v, want the tensor, its non-finite count and the file named", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output folder made: %v", err)
	}
	if tmps, _ := filepath.Glob(filepath.Join(base, ".export-tmp-*")); len(tmps) > 0 {
		t.Errorf("temporary folders left: %v", tmps)
	}
}
