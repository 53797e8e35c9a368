package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"dira/internal/runlock"
)

// fakeStage writes one artifact and counts its runs; failOnce makes its first
// run fail.
type fakeStage struct {
	name     string
	runs     int
	failOnce bool
	panics   bool
}

func (s *fakeStage) Name() string { return s.name }

func (s *fakeStage) Run(ctx context.Context, r *Run) error {
	s.runs++
	if s.panics {
		panic("tensor shape mismatch")
	}
	if s.failOnce && s.runs == 1 {
		return errors.New("loss is NaN at step 3")
	}
	p := filepath.Join(r.StageDir(s.name), "out.txt")
	if err := os.WriteFile(p, []byte(s.name), 0o644); err != nil {
		return err
	}
	return r.RecordArtifact(s.name, p)
}

func testConfig(t *testing.T) Config {
	cfg, err := Load(writeConfig(t, goodConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestExecuteRecordsAndSkipsCompletedStages(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Join(t.TempDir(), "run")
	warm, adv := &fakeStage{name: StageWarmup}, &fakeStage{name: StageAdversarial, failOnce: true}

	r, err := Open(dir, cfg, map[string]string{"dira": "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = Execute(context.Background(), r, []Stage{warm, adv})
	if err == nil || !strings.Contains(err.Error(), "stage adversarial: loss is NaN at step 3") {
		t.Fatalf("err = %v, want the adversarial failure", err)
	}
	r.Close()
	m := readManifest(t, dir)
	if m.Stages[0].State != StateCompleted || m.Stages[1].State != StateFailed {
		t.Fatalf("states after failure: %+v", m.Stages)
	}
	if m.Stages[0].Artifacts["warmup/out.txt"] == "" {
		t.Fatalf("artifact sha256 not recorded: %+v", m.Stages[0])
	}

	// Re-running the same config skips warmup and resumes adversarial.
	r, err = Open(dir, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Execute(context.Background(), r, []Stage{warm, adv}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if warm.runs != 1 || adv.runs != 2 {
		t.Fatalf("runs: warmup %d (want 1), adversarial %d (want 2)", warm.runs, adv.runs)
	}
	m = readManifest(t, dir)
	if m.Stages[1].State != StateCompleted || m.Stages[1].Error != "" {
		t.Fatalf("adversarial after resume: %+v", m.Stages[1])
	}
	if _, err := os.Stat(filepath.Join(dir, "config.yaml")); err != nil {
		t.Fatal("config.yaml not written")
	}
}

func TestOpenRefusesArchitectureChange(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Join(t.TempDir(), "run")
	r, err := Open(dir, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	changed := cfg
	changed.Model.Arch = "resnet50"
	changed.Model.DecoderChannels = []int{128, 64, 32, 16, 8}
	_, err = Open(dir, changed, nil, nil)
	if err == nil {
		t.Fatal("resume accepted a changed architecture")
	}
	for _, w := range []string{"model.arch: resnet18 -> resnet50", "model.decoder_channels"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	// A non-architecture change (more epochs) resumes fine.
	more := cfg
	w := *cfg.Stages[0].(*WarmupStage)
	w.Epochs = 5
	more.Stages = append(Stages{&w}, cfg.Stages[1:]...)
	if r, err = Open(dir, more, nil, nil); err != nil {
		t.Fatalf("epochs change refused: %v", err)
	}
	r.Close()
}

func TestExecuteTurnsPanicIntoError(t *testing.T) {
	cfg := testConfig(t)
	r, err := Open(filepath.Join(t.TempDir(), "run"), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = Execute(context.Background(), r, []Stage{&fakeStage{name: StageWarmup, panics: true}})
	// A panic is a bug: the error says so and keeps the stack that shows where.
	if err == nil || !strings.Contains(err.Error(), "stage warmup: internal error (a bug in dira") ||
		!strings.Contains(err.Error(), "tensor shape mismatch") || !strings.Contains(err.Error(), "run_test.go") {
		t.Fatalf("err = %v", err)
	}
	var pe *PanicError
	if !errors.As(err, &pe) {
		t.Errorf("err is not a *PanicError")
	}
	if m := readManifest(t, r.Dir); m.Stages[0].State != StateFailed {
		t.Errorf("manifest state %q, want failed", m.Stages[0].State)
	}
}

func TestExecuteWithoutStages(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = nil
	r, err := Open(filepath.Join(t.TempDir(), "run"), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Execute(context.Background(), r, nil); !errors.Is(err, ErrNoStages) {
		t.Fatalf("err = %v, want ErrNoStages", err)
	}
}

func readManifest(t *testing.T, dir string) Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOpenLocksTheRunFolder: while one Run has the folder open, a second
// Open is refused at once, naming the holder's PID and host, and changes
// nothing; after Close the folder opens again.
func TestOpenLocksTheRunFolder(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Join(t.TempDir(), "run")
	r, err := Open(dir, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	host, _ := os.Hostname()
	_, err = Open(dir, cfg, nil, nil)
	var held *runlock.HeldError
	if !errors.As(err, &held) || held.Holder.PID != os.Getpid() || !strings.Contains(err.Error(), fmt.Sprintf("PID %d on host %s", os.Getpid(), host)) {
		t.Fatalf("second Open: %v; want a refusal naming PID %d on host %s", err, os.Getpid(), host)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "manifest.json")); !bytes.Equal(before, after) {
		t.Error("the refused Open changed manifest.json")
	}
	r.Close()
	r, err = Open(dir, cfg, nil, nil)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	r.Close()
}

// TestOpenRemovesTempsOfAKilledRun: a run killed mid-write leaves its lock
// file and temporary files (a half-written checkpoint, an unfinished
// export folder); the next Open takes the lock over, removes exactly those
// temporary files and says so.
func TestOpenRemovesTempsOfAKilledRun(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Join(t.TempDir(), "run")
	r, err := Open(dir, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// What a SIGKILLed `dira run` leaves: its lock, naming a PID that no
	// longer runs (a finished child's), and its temporary files.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	lock := fmt.Sprintf(`{"pid": %d, "host": "h", "since": "2025-01-02T03:04:05Z"}`, dead.Process.Pid)
	os.WriteFile(filepath.Join(dir, runlock.FileName), []byte(lock), 0o644)
	temps := []string{"warmup/.last.ckpt.tmp-2841", ".manifest.json.tmp-77", "warmup/samples/.epoch_001.png.tmp-5", ".export-tmp-3312/encoder.onnx"}
	keep := []string{"warmup/last.ckpt", ".keep", "warmup/notes.tmp"}
	for _, f := range append(append([]string(nil), temps...), keep...) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), make([]byte, 1000), 0o644)
	}
	var log bytes.Buffer
	r, err = Open(dir, cfg, nil, &log)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, f := range temps {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".export-tmp-3312")); !os.IsNotExist(err) {
		t.Errorf("the export folder is still there: %v", err)
	}
	for _, f := range keep {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s removed: %v", f, err)
		}
	}
	for _, want := range []string{fmt.Sprintf("taking over the lock of dira PID %d on host h", dead.Process.Pid),
		"removed 4 temporary file(s) left by an interrupted run (0.0 MB)", "warmup/.last.ckpt.tmp-2841", ".export-tmp-3312"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}
