package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"dira/internal/torch/torchtest"
	"dira/pipeline"
)

// tinyRun is a real config: a ResNet-18 U-Net at 64x64 on the built-in
// synthetic images, one warmup epoch of 4 steps, a checkpoint every 2.
const tinyRun = `
run: {name: tiny, threads: 2, seed: 4}
data:
  synthetic: {train_count: 32, val_count: 8, size: 96}
  image_size: 64
  workers: 2
model:
  arch: resnet18
  decoder_channels: [32, 16, 16, 8, 8]
  projection: {hidden_dim: 64, out_dim: 32}
moco: {queue_size: 64, ghost_bn_groups: 2}
stages:
  - {name: warmup, epochs: 1, batch_size: 8, log_every_steps: 1, checkpoint_every_steps: 2}
`

// cli runs the test binary as the dira CLI (see TestMain) in a process of its
// own, with extra environment variables.
func cli(t *testing.T, env []string, args ...string) (code int, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(append(os.Environ(), "DIRA_TEST_CLI=1"), env...)
	var e bytes.Buffer
	cmd.Stderr = &e
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), e.String()
}

// stepLosses reads a stage's per-step losses from metrics.jsonl.
func stepLosses(t *testing.T, path string) map[float64]map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[float64]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r map[string]any
		json.Unmarshal([]byte(line), &r)
		if r["kind"] == "step" {
			delete(r, "img_per_s")
			out[r["step"].(float64)] = r
		}
	}
	return out
}

// TestLibtorchErrorEndsTheRun: a libtorch error at step 3 of a real `dira
// run` (a process of its own) exits 1 with one line naming the stage, epoch
// and step; the manifest records the stage as failed; last.ckpt is the
// step-2 file, byte for byte; and running again completes with the losses
// of an uninterrupted run.
func TestLibtorchErrorEndsTheRun(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := filepath.Join(base, "tiny.yaml")
	os.WriteFile(cfg, []byte(tinyRun), 0o644)
	whole, failing := filepath.Join(base, "whole"), filepath.Join(base, "failing")
	if code, stderr := cli(t, nil, "run", cfg, "--run-dir", whole); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, stderr)
	}

	code, stderr := cli(t, []string{"DIRA_TEST_FAULT_STEP=3", "DIRA_TEST_FAULT_DIR=" + failing}, "run", cfg, "--run-dir", failing)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if code != 1 || !strings.HasPrefix(last, "dira: stage warmup: epoch 1 step 3: libtorch: ") {
		t.Fatalf("exit %d, last stderr line %q; want exit 1 and \"dira: stage warmup: epoch 1 step 3: libtorch: ...\"\n%s", code, last, stderr)
	}
	var m pipeline.Manifest
	b, _ := os.ReadFile(filepath.Join(failing, "manifest.json"))
	if err := json.Unmarshal(b, &m); err != nil || m.Stages[0].State != pipeline.StateFailed {
		t.Errorf("manifest: %v %+v, want the warmup stage failed", err, m.Stages)
	}
	// report.html was rewritten as the stage failed, and says so.
	if html, err := os.ReadFile(filepath.Join(failing, "report.html")); err != nil || !strings.Contains(string(html), "failed in stage warmup") {
		t.Errorf("report.html after the failure: %v, says failed: %v", err, strings.Contains(string(html), "failed in stage warmup"))
	}
	before, err1 := os.ReadFile(filepath.Join(failing, "warmup", "last.ckpt.at-fault"))
	after, err2 := os.ReadFile(filepath.Join(failing, "warmup", "last.ckpt"))
	if err1 != nil || err2 != nil || !bytes.Equal(before, after) {
		t.Errorf("last.ckpt changed by the failure (%v, %v, %d vs %d bytes)", err1, err2, len(before), len(after))
	}

	if code, stderr := cli(t, nil, "run", cfg, "--run-dir", failing); code != 0 {
		t.Fatalf("re-run: exit %d\n%s", code, stderr)
	}
	// dira report rewrites it, anywhere.
	out := filepath.Join(base, "copy.html")
	if code, stderr := cli(t, nil, "report", failing, "--out", out); code != 0 {
		t.Errorf("dira report: exit %d\n%s", code, stderr)
	} else if html, _ := os.ReadFile(out); !strings.Contains(string(html), "loss") {
		t.Errorf("dira report wrote %d bytes without the loss figure", len(html))
	}
	a := stepLosses(t, filepath.Join(whole, "warmup", "metrics.jsonl"))
	r := stepLosses(t, filepath.Join(failing, "warmup", "metrics.jsonl"))
	if len(a) != 4 || len(r) != 4 {
		t.Fatalf("%d steps uninterrupted, %d after the re-run; want 4", len(a), len(r))
	}
	worst := 0.0
	for s, ra := range a {
		for k, v := range ra {
			if x, ok := v.(float64); ok {
				worst = math.Max(worst, math.Abs(x-r[s][k].(float64)))
			}
		}
	}
	t.Logf("re-run after the libtorch error vs uninterrupted: max |difference| %.3g", worst)
	if worst > 1e-6 {
		t.Errorf("losses differ by %.3g", worst)
	}
}
