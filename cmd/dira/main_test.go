package main

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/pipeline"
	"dira/stages"
)

// TestMain doubles as the dira binary for tests that need a real process:
// with DIRA_TEST_CLI set it runs the CLI on os.Args after "--" and exits with
// its status. DIRA_TEST_FAULT_STEP=N makes step N of the warmup stage fail
// with a real libtorch error; before failing it copies the stage's last.ckpt
// to last.ckpt.at-fault, so the test can check the failure left it alone.
// Before each training step, DIRA_TEST_STEP_MARK=FILE appends "step N" to
// FILE (a test waits for it), DIRA_TEST_STEP_SLEEP=D sleeps D (a step as
// slow as a large model's), and at step DIRA_TEST_HANG_STEP=N the process
// blocks for ever, as a libtorch call that never returns.
func TestMain(m *testing.M) {
	if os.Getenv("DIRA_TEST_CLI") == "" {
		os.Exit(m.Run())
	}
	args := os.Args[1:]
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	var o stages.Options
	mark, hang := os.Getenv("DIRA_TEST_STEP_MARK"), os.Getenv("DIRA_TEST_HANG_STEP")
	sleep, _ := time.ParseDuration(os.Getenv("DIRA_TEST_STEP_SLEEP"))
	o.Hooks.BeforeStep = func(stage string, step int64, q, _, _ *ts.Tensor) {
		if mark != "" {
			f, _ := os.OpenFile(mark, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			fmt.Fprintf(f, "%s step %d\n", stage, step)
			f.Close()
		}
		time.Sleep(sleep)
		if hang == strconv.FormatInt(step, 10) {
			time.Sleep(time.Hour) // deaf to the context, as a long libtorch call
		}
	}
	if n, err := strconv.ParseInt(os.Getenv("DIRA_TEST_FAULT_STEP"), 10, 64); err == nil {
		dir := os.Getenv("DIRA_TEST_FAULT_DIR")
		o.Hooks.BeforeStep = func(stage string, step int64, q, _, _ *ts.Tensor) {
			if stage != pipeline.StageWarmup || step != n {
				return
			}
			last := filepath.Join(dir, stage, "last.ckpt")
			if b, err := os.ReadFile(last); err == nil {
				os.WriteFile(last+".at-fault", b, 0o644)
			}
			torch.Must(q.Mm(q, false)) // a [N,3,H,W] tensor is no matrix: libtorch refuses
		}
	}
	os.Exit(run(args, os.Stdout, os.Stderr, o))
}

func dira(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e, stages.Options{})
	return code, o.String(), e.String()
}

func TestValidateDemo(t *testing.T) {
	torchtest.Pin(t)
	code, out, errOut := dira(t, "validate", "../../configs/demo.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "arch: resnet18") {
		t.Fatalf("resolved config not printed:\n%s", out)
	}
}

// TestValidateReportsEveryProblem: an unknown key is reported with its line;
// a negative learning rate, a queue size that is not a multiple of the batch
// and a missing data folder are reported together, one line each, exit 2.
func TestValidateReportsEveryProblem(t *testing.T) {
	torchtest.Pin(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	os.WriteFile(p, []byte(`
run: {name: bad}
data: {source: folder, root: /nonexistent/images, image_size: 64}
model: {arch: resnet18}
moco: {queue_size: 100}
stages:
  - {name: warmup, epochs: 1, batch_size: 8, optimizer: {lr: -0.1}}
`), 0o644)
	code, _, errOut := dira(t, "validate", p)
	if code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, errOut)
	}
	for _, want := range []string{
		"stages[0].optimizer.lr: must be > 0, got -0.1",
		"moco.queue_size: must be a multiple of stages[0].batch_size (8), got 100",
		"data.root:",
	} {
		if !strings.Contains(errOut, "\n"+want) {
			t.Errorf("stderr lacks a line starting %q:\n%s", want, errOut)
		}
	}

	os.WriteFile(p, []byte("run: {name: bad, thredas: 2}\n"), 0o644)
	code, _, errOut = dira(t, "validate", p)
	if code != 2 || !strings.Contains(errOut, "run.thredas: unknown key") || !strings.Contains(errOut, "line 1") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestRunWithoutStagesSaysSo(t *testing.T) {
	torchtest.Pin(t)
	code, _, errOut := dira(t, "run", "../../configs/demo.yaml", "--set", "stages=[]", "--run-dir", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "lists no stages") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestVersionPrintsFiveVersions(t *testing.T) {
	torchtest.Pin(t)
	code, out, errOut := dira(t, "version")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"dira ", "go ", "gotch ", "libtorch ", "onnxruntime "} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "unavailable") || strings.Contains(out, "unknown") {
		t.Errorf("a version could not be detected:\n%s", out)
	}
}

func TestModelSummary(t *testing.T) {
	torchtest.Pin(t)
	// The paper's config, whose image folder is not here: the summary needs
	// only the networks.
	code, out, errOut := dira(t, "model", "summary", "../../configs/chestxray14-dir.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"encoder", "23,508,032", "9,012,928", "145", "4,458,624", "1,554,433", "32,521,105", "[1 2048 7 7]"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestConfigDefaults: every key with a comment, and each stage kind with its
// own keys only.
func TestConfigDefaults(t *testing.T) {
	torchtest.Pin(t)
	code, out, _ := dira(t, "config", "defaults")
	if code != 0 || !strings.Contains(out, "queue_size: 65536 # ") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	_, export, ok := strings.Cut(out, "- name: export")
	export, _, _ = strings.Cut(export, "- name:")
	if !ok || strings.Contains(export, "optimizer") || strings.Contains(export, "epochs") || !strings.Contains(export, "tolerance: 0.0001") {
		t.Errorf("the export entry:\n%s", export)
	}
	_, warmup, _ := strings.Cut(out, "- name: warmup")
	warmup, _, _ = strings.Cut(warmup, "- name:")
	if strings.Contains(warmup, "tolerance") || strings.Contains(warmup, "disc_optimizer") || !strings.Contains(warmup, "optimizer:") {
		t.Errorf("the warmup entry:\n%s", warmup)
	}
}

// TestValidateRefusesKeysOfOtherKinds: a training key on an export stage and
// an export key on a training stage are refused by YAML path, exit 2.
func TestValidateRefusesKeysOfOtherKinds(t *testing.T) {
	torchtest.Pin(t)
	for _, tc := range []struct {
		sets []string
		want []string
	}{
		{[]string{"stages[2].optimizer.lr=5", "stages[2].epochs=99"},
			[]string{"stages[2].optimizer: not a key of an export stage", "stages[2].epochs: not a key of an export stage"}},
		{[]string{"stages[0].tolerance=0.1"}, []string{"stages[0].tolerance: not a key of a warmup stage"}},
	} {
		args := []string{"validate", "../../configs/demo.yaml"}
		for _, s := range tc.sets {
			args = append(args, "--set", s)
		}
		code, _, errOut := dira(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.sets, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.sets, w, errOut)
			}
		}
	}
}

func TestDataPreviewWritesPNG(t *testing.T) {
	torchtest.Pin(t)
	out := filepath.Join(t.TempDir(), "x.png")
	code, _, errOut := dira(t, "data", "preview", "../../configs/demo.yaml", "--out", out, "--n", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a readable PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 3*64 || b.Dy() < 3*64 {
		t.Fatalf("preview is %v, want 3 rows of three 64x64 images", b)
	}
}

// TestPaperConfigsValidate: the two ChestX-ray14 configs are valid, from the
// repository root, once the image folder exists (the official split lists are
// in configs/lists/).
func TestPaperConfigsValidate(t *testing.T) {
	torchtest.Pin(t)
	t.Chdir("../..")
	for _, cfg := range []string{"chestxray14-dir.yaml", "chestxray14-dira.yaml"} {
		code, out, errOut := dira(t, "validate", "configs/"+cfg, "--set", "data.root="+t.TempDir())
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", cfg, code, errOut)
		}
		if !strings.Contains(out, "arch: resnet50") || !strings.Contains(out, "batch_size: 256") {
			t.Fatalf("%s resolved to:\n%s", cfg, out)
		}
	}
	// The downstream configs, with their image folders made up.
	mont := t.TempDir()
	for _, split := range []string{"train", "val", "test"} {
		for _, d := range []string{"CXR_png", "ManualMask/leftMask", "ManualMask/rightMask"} {
			os.MkdirAll(filepath.Join(mont, split, d), 0o755)
		}
	}
	for cfg, root := range map[string]string{"chestxray14-classify.yaml": t.TempDir(), "shenzhen-classify.yaml": t.TempDir(), "montgomery-segment.yaml": mont} {
		code, out, errOut := dira(t, "validate", "configs/"+cfg, "--set", "stages[0].data.root="+root)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", cfg, code, errOut)
		}
		if !strings.Contains(out, "arch: resnet50") || !strings.Contains(out, "trials: 3") {
			t.Fatalf("%s resolved to:\n%s", cfg, out)
		}
	}
}
