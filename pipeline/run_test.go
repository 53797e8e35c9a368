package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	if _, err := Open(dir, cfg, nil, nil); err != nil {
		t.Fatal(err)
	}
	changed := cfg
	changed.Model.Arch = "resnet50"
	changed.Model.DecoderChannels = []int{128, 64, 32, 16, 8}
	_, err := Open(dir, changed, nil, nil)
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
	if _, err := Open(dir, more, nil, nil); err != nil {
		t.Fatalf("epochs change refused: %v", err)
	}
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
