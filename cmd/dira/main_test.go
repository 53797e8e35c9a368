package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	runtime.LockOSThread()
	os.Exit(m.Run())
}

func dira(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestValidateDemo(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
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
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
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
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	code, _, errOut := dira(t, "run", "../../configs/demo.yaml", "--set", "stages=[]", "--run-dir", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "lists no stages") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestVersionPrintsFiveVersions(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
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
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
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

func TestConfigDefaults(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	code, out, _ := dira(t, "config", "defaults")
	if code != 0 || !strings.Contains(out, "queue_size: 65536 # ") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestDataPreviewWritesPNG(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
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

// TestPaperConfigsValidate: the two ChestX-ray14 configs are valid once the
// image folder exists (the official list files live in shared/).
func TestPaperConfigsValidate(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	lists, err := filepath.Abs("../../../shared/data/chestxray14")
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []string{"chestxray14-dir.yaml", "chestxray14-dira.yaml"} {
		code, out, errOut := dira(t, "validate", "../../configs/"+cfg, "--set", "data.root="+t.TempDir(),
			"--set", "data.train_list="+filepath.Join(lists, "Xray14_train_official.txt"),
			"--set", "data.val_list="+filepath.Join(lists, "Xray14_val_official.txt"))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", cfg, code, errOut)
		}
		if !strings.Contains(out, "arch: resnet50") || !strings.Contains(out, "batch_size: 256") {
			t.Fatalf("%s resolved to:\n%s", cfg, out)
		}
	}
}
