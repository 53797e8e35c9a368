package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"time"

	"dira/internal/atomicfile"
	"dira/internal/runlock"
)

// Stage is one step of a run. Run must leave everything it produces under
// r.StageDir(Name()) and write it atomically; it may be called again on a
// partially done stage and must then resume.
type Stage interface {
	Name() string
	Run(ctx context.Context, r *Run) error
}

// Run is an open run folder:
//
//	<output_dir>/<name>/config.yaml    the resolved config
//	<output_dir>/<name>/manifest.json  versions, seed, stage states, artifact sha256
//	<output_dir>/<name>/<stage>/       each stage's files
type Run struct {
	Dir      string
	Config   Config
	Manifest Manifest
	Log      io.Writer
	// OnProgress, when set, is called after every stage state change and
	// whenever a stage reports progress (Progress): `dira run` rewrites the
	// run's report.html there.
	OnProgress func()

	lock *runlock.Lock // this process is the folder's only writer until Close
}

// Close releases the run folder for other processes. It is safe to call
// more than once.
func (r *Run) Close() error { return r.lock.Release() }

// Progress tells the run's observer (OnProgress) that the stage made
// progress worth showing: a training stage calls it at each epoch end.
func (r *Run) Progress() {
	if r.OnProgress != nil {
		r.OnProgress()
	}
}

// Manifest is manifest.json.
type Manifest struct {
	Versions     map[string]string `json:"versions"`
	GitCommit    string            `json:"git_commit"`
	Seed         uint64            `json:"seed"`
	ConfigSHA256 string            `json:"config_sha256"`
	Created      time.Time         `json:"created"`
	Stages       []StageRecord     `json:"stages"`
}

// Stage states in the manifest.
const (
	StatePending   = "pending"
	StateRunning   = "running"
	StateCompleted = "completed"
	StateFailed    = "failed"
)

// StageRecord is one stage's entry in the manifest.
type StageRecord struct {
	Name      string            `json:"name"`
	State     string            `json:"state"`
	Started   *time.Time        `json:"started,omitempty"`
	Finished  *time.Time        `json:"finished,omitempty"`
	Error     string            `json:"error,omitempty"`
	Artifacts map[string]string `json:"artifacts,omitempty"` // path relative to the run folder -> sha256
}

// Open creates the run folder of cfg at dir (or reopens it to resume) and
// makes this process its only writer until Close: while another process
// has the folder open, Open fails at once with an error naming that
// process (a *runlock.HeldError). A lock left by a process that died is
// taken over, and the temporary files that died with it (atomic writes and
// export folders it never finished) are removed; the log says both. A
// reopened run must have been made with the same architecture fields; the
// error names each field that changed. versions goes into a new manifest.
func Open(dir string, cfg Config, versions map[string]string, log io.Writer) (_ *Run, err error) {
	if log == nil {
		log = io.Discard
	}
	r := &Run{Dir: dir, Config: cfg, Log: log}
	cfgYAML, err := cfg.YAML()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	lock, stale, err := runlock.Acquire(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Release()
		}
	}()
	r.lock = lock
	if stale != nil {
		fmt.Fprintf(log, "run %s: taking over the lock of dira %s, which ended without releasing it\n", dir, stale)
	}
	if err := removeTemps(dir, log); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(cfgYAML)
	manifestPath := filepath.Join(dir, "manifest.json")
	prev, err := os.ReadFile(manifestPath)
	switch {
	case err == nil:
		if err := json.Unmarshal(prev, &r.Manifest); err != nil {
			return nil, fmt.Errorf("run %s: manifest.json: %w", dir, err)
		}
		old, err := Load(filepath.Join(dir, "config.yaml"), nil)
		if err != nil {
			return nil, fmt.Errorf("run %s: cannot resume: %w", dir, err)
		}
		if diff := ArchitectureDiff(old, cfg); len(diff) > 0 {
			return nil, fmt.Errorf("run %s: cannot resume: architecture fields changed: %s (use a new run name or --run-dir)", dir, strings.Join(diff, "; "))
		}
		fmt.Fprintf(log, "resuming run %s\n", dir)
	case errors.Is(err, os.ErrNotExist):
		r.Manifest = Manifest{Versions: versions, GitCommit: gitCommit(), Seed: cfg.Run.Seed, Created: time.Now().UTC()}
	default:
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	r.Manifest.ConfigSHA256 = hex.EncodeToString(sum[:])
	// Keep records of stages still listed, in config order.
	var recs []StageRecord
	for _, s := range cfg.Stages {
		rec := StageRecord{Name: s.Kind(), State: StatePending}
		for _, p := range r.Manifest.Stages {
			if p.Name == s.Kind() {
				rec = p
			}
		}
		recs = append(recs, rec)
	}
	r.Manifest.Stages = recs
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.yaml"), cfgYAML, 0o644); err != nil {
		return nil, err
	}
	return r, r.saveManifest()
}

// StageDir is the folder of one stage's files, created on first use.
func (r *Run) StageDir(stage string) string {
	d := filepath.Join(r.Dir, stage)
	os.MkdirAll(d, 0o755)
	return d
}

// RecordArtifact stores the sha256 of a file the stage wrote in the manifest.
func (r *Run) RecordArtifact(stage, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("run: artifact: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("run: artifact %s: %w", path, err)
	}
	return r.RecordArtifactSum(stage, path, hex.EncodeToString(h.Sum(nil)))
}

// RecordArtifactSum stores an artifact's sha256 (hex) that its writer computed
// while writing it, sparing a second read of a large file.
func (r *Run) RecordArtifactSum(stage, path, sum string) error {
	rel, err := filepath.Rel(r.Dir, path)
	if err != nil {
		rel = path
	}
	rec := r.record(stage)
	if rec == nil {
		return fmt.Errorf("run: artifact %s: stage %q is not in this run", path, stage)
	}
	if rec.Artifacts == nil {
		rec.Artifacts = map[string]string{}
	}
	rec.Artifacts[rel] = sum
	return r.saveManifest()
}

// StageState is the manifest state of a stage ("" if it is not in the run).
func (r *Run) StageState(stage string) string {
	if rec := r.record(stage); rec != nil {
		return rec.State
	}
	return ""
}

func (r *Run) record(stage string) *StageRecord {
	for i := range r.Manifest.Stages {
		if r.Manifest.Stages[i].Name == stage {
			return &r.Manifest.Stages[i]
		}
	}
	return nil
}

func (r *Run) setState(stage, state string, stageErr error) error {
	rec := r.record(stage)
	now := time.Now().UTC()
	rec.State = state
	rec.Error = ""
	switch state {
	case StateRunning:
		rec.Started, rec.Finished = &now, nil
	case StateCompleted, StateFailed:
		rec.Finished = &now
	}
	if stageErr != nil {
		rec.Error = stageErr.Error()
	}
	err := r.saveManifest()
	r.Progress()
	return err
}

func (r *Run) saveManifest() error {
	b, err := json.MarshalIndent(r.Manifest, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(r.Dir, "manifest.json"), append(b, '\n'), 0o644)
}

// ErrNoStages is returned by Execute when the config lists no stages.
var ErrNoStages = errors.New("the config lists no stages: nothing to run (add a stages: list, see `dira config defaults`)")

// Execute runs stages in order. A stage the manifest records as completed is
// skipped; the others run (and resume from their own checkpoints). A failed
// stage is recorded as failed with its error, and Execute stops there. A
// panic inside a stage is a bug in dira (libtorch errors arrive as errors):
// it fails the stage too, and its error keeps the stack trace.
func Execute(ctx context.Context, r *Run, stages []Stage) error {
	if len(stages) == 0 {
		return ErrNoStages
	}
	for _, s := range stages {
		name := s.Name()
		if r.record(name) == nil {
			return fmt.Errorf("run: stage %q is not listed in the config", name)
		}
		if r.StageState(name) == StateCompleted {
			fmt.Fprintf(r.Log, "stage %s: already completed, skipping\n", name)
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.setState(name, StateRunning, nil); err != nil {
			return err
		}
		fmt.Fprintf(r.Log, "stage %s: running\n", name)
		err := runProtected(ctx, s, r)
		if err != nil {
			err = fmt.Errorf("stage %s: %w", name, err)
			if serr := r.setState(name, StateFailed, err); serr != nil {
				return errors.Join(err, serr)
			}
			return err
		}
		if err := r.setState(name, StateCompleted, nil); err != nil {
			return err
		}
		fmt.Fprintf(r.Log, "stage %s: completed\n", name)
	}
	return nil
}

func runProtected(ctx context.Context, s Stage, r *Run) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return s.Run(ctx, r)
}

// PanicError is a stage's panic: a bug in dira, reported with its stack so
// it can be fixed.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("internal error (a bug in dira; please report it with this trace): %v\n%s", e.Value, e.Stack)
}

// ArchitectureDiff lists the architecture fields (model.*, data.image_size,
// moco.queue_size, model.projection.*) that differ between a and b, as
// "path: old -> new".
func ArchitectureDiff(a, b Config) []string {
	var diff []string
	walkDiff("model", reflect.ValueOf(a.Model), reflect.ValueOf(b.Model), &diff)
	if a.Data.ImageSize != b.Data.ImageSize {
		diff = append(diff, fmt.Sprintf("data.image_size: %d -> %d", a.Data.ImageSize, b.Data.ImageSize))
	}
	if a.MoCo.QueueSize != b.MoCo.QueueSize {
		diff = append(diff, fmt.Sprintf("moco.queue_size: %d -> %d", a.MoCo.QueueSize, b.MoCo.QueueSize))
	}
	return diff
}

func walkDiff(path string, a, b reflect.Value, diff *[]string) {
	if a.Kind() == reflect.Struct {
		for i := 0; i < a.NumField(); i++ {
			walkDiff(joinPath(path, tagName(a.Type().Field(i))), a.Field(i), b.Field(i), diff)
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*diff = append(*diff, fmt.Sprintf("%s: %v -> %v", path, a.Interface(), b.Interface()))
	}
}

// gitCommit is the VCS revision stamped into the binary, else "unknown".
func gitCommit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
