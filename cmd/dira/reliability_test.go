package main

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dira/data"
	"dira/internal/torch/torchtest"
	"dira/pipeline"
)

// syncBuffer is a bytes.Buffer a child process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCLI starts the test binary as the dira CLI (see TestMain) without
// waiting for it; the test kills it if it is still running at the end.
func startCLI(t *testing.T, env []string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(append(os.Environ(), "DIRA_TEST_CLI=1"), env...)
	var o, e syncBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &o, &e
}

// waitExit waits for cmd at most d and returns its exit status (-1 when it
// died of a signal) and how long it took; past d the test fails.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration, stderr fmt.Stringer) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running %v later; stderr:\n%s", d, stderr)
		return 0, 0
	}
}

// waitFor polls until file holds want, at most d.
func waitFor(t *testing.T, file, want string, d time.Duration, stderr fmt.Stringer) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(file); strings.Contains(string(b), want) {
			return
		}
	}
	t.Fatalf("%q not in %s after %v; stderr:\n%s", want, file, d, stderr)
}

// cliWithin runs the CLI as a process of its own and fails the test if it
// has not ended after d (before the fixes, a FIFO among the images made
// these commands block for ever).
func cliWithin(t *testing.T, d time.Duration, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd, o, e := startCLI(t, env, args...)
	code, _ = waitExit(t, cmd, d, e)
	return code, o.String(), e.String()
}

// TestInterruptedRunSaysHowToResume: SIGINT in the middle of `dira run`
// ends it within the grace period with exit status 130 and the command
// that resumes it, --run-dir and --set included; that command completes
// the run.
func TestInterruptedRunSaysHowToResume(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := filepath.Join(base, "tiny.yaml")
	os.WriteFile(cfg, []byte(tinyRun), 0o644)
	dir, mark := filepath.Join(base, "my run"), filepath.Join(base, "steps")
	cmd, _, stderr := startCLI(t, []string{"DIRA_TEST_STEP_MARK=" + mark},
		"run", cfg, "--run-dir", dir, "--set", "stages[0].log_every_steps=1")
	waitFor(t, mark, "warmup step 2", time.Minute, stderr)
	cmd.Process.Signal(os.Interrupt)
	code, took := waitExit(t, cmd, stopGrace+5*time.Second, stderr)
	t.Logf("stopped %v after SIGINT", took.Round(time.Millisecond))
	want := fmt.Sprintf("dira run %s --run-dir '%s' --set 'stages[0].log_every_steps=1'", cfg, dir)
	if code != exitInterrupted || !strings.Contains(stderr.String(), "SIGINT: stopping") || !strings.Contains(stderr.String(), "`"+want+"`") {
		t.Fatalf("exit %d; want %d and the resume command %q in stderr:\n%s", code, exitInterrupted, want, stderr)
	}
	// Follow the advice, as a shell would read it.
	resume := strings.Replace(want, "dira ", shellQuote(os.Args[0])+" -test.run='^$' -- ", 1)
	sh := exec.Command("sh", "-c", resume)
	sh.Env = append(os.Environ(), "DIRA_TEST_CLI=1")
	out, err := sh.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "resuming run "+dir) || !strings.Contains(string(out), "all stages completed") {
		t.Fatalf("%s: %v\n%s", resume, err, out)
	}
}

// TestHungCommandExitsAfterGrace: a command deaf to the context (a step
// stuck in libtorch) is ended stopGrace after SIGTERM, with status 130 and
// the resume command. The next run of the folder takes over the lock the
// dead process left, removes the temporary files such a death leaves, says
// both, and completes.
func TestHungCommandExitsAfterGrace(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := filepath.Join(base, "tiny.yaml")
	os.WriteFile(cfg, []byte(tinyRun), 0o644)
	dir, mark := filepath.Join(base, "run"), filepath.Join(base, "steps")
	cmd, _, stderr := startCLI(t, []string{"DIRA_TEST_STEP_MARK=" + mark, "DIRA_TEST_HANG_STEP=2"}, "run", cfg, "--run-dir", dir)
	waitFor(t, mark, "warmup step 2", time.Minute, stderr)
	cmd.Process.Signal(syscall.SIGTERM)
	code, took := waitExit(t, cmd, stopGrace+5*time.Second, stderr)
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
	if code != exitInterrupted || took < stopGrace || !strings.Contains(stderr.String(), "still busy 5s after the signal: exiting now") ||
		!strings.Contains(stderr.String(), "run `dira run "+cfg+" --run-dir "+dir+"` to resume") {
		t.Fatalf("exit %d after %v; want %d after %v, saying why and how to resume:\n%s", code, took, exitInterrupted, stopGrace, stderr)
	}
	// What a kill during a checkpoint write leaves as well.
	tmp := filepath.Join(dir, "warmup", ".last.ckpt.tmp-123456")
	os.WriteFile(tmp, make([]byte, 4096), 0o644)

	code, _, errOut := cliWithin(t, time.Minute, nil, "run", cfg, "--run-dir", dir)
	if code != 0 {
		t.Fatalf("re-run: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{fmt.Sprintf("taking over the lock of dira PID %d", cmd.Process.Pid), "removed 1 temporary file(s)", "warmup/.last.ckpt.tmp-123456"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("re-run's stderr lacks %q:\n%s", want, errOut)
		}
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temporary file still there: %v", err)
	}
}

// TestSecondRunIsRefused: while one `dira run` works in a folder, a second
// on the same folder exits 1 at once, naming the first's PID and host, and
// changes nothing there.
func TestSecondRunIsRefused(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := filepath.Join(base, "tiny.yaml")
	os.WriteFile(cfg, []byte(tinyRun), 0o644)
	dir, mark := filepath.Join(base, "run"), filepath.Join(base, "steps")
	first, _, stderr := startCLI(t, []string{"DIRA_TEST_STEP_MARK=" + mark, "DIRA_TEST_STEP_SLEEP=2s"}, "run", cfg, "--run-dir", dir)
	waitFor(t, mark, "warmup step 1", time.Minute, stderr)
	manifest, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	start := time.Now()
	code, _, errOut := cliWithin(t, time.Minute, nil, "run", cfg, "--run-dir", dir)
	host, _ := os.Hostname()
	want := fmt.Sprintf("run folder %s is in use by dira PID %d on host %s", dir, first.Process.Pid, host)
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("second run: exit %d after %v; want 1 and %q:\n%s", code, time.Since(start), want, errOut)
	}
	t.Logf("refused after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(errOut))
	if m, _ := os.ReadFile(filepath.Join(dir, "manifest.json")); !bytes.Equal(m, manifest) {
		t.Error("the refused run changed manifest.json")
	}
	first.Process.Kill()
}

// TestFIFOAmongImages: a FIFO named like an image in an input folder is a
// bad image under the skip policy for `dira data preview`, `dira infer`
// and `dira run`, which all finish; before, each blocked for ever opening
// it, deaf to Ctrl-C.
func TestFIFOAmongImages(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	imgs := filepath.Join(base, "images")
	os.MkdirAll(imgs, 0o755)
	for i := range 9 {
		f, _ := os.Create(filepath.Join(imgs, fmt.Sprintf("img%02d.png", i)))
		png.Encode(f, data.DrawRadiograph(96, 1, uint64(i)))
		f.Close()
	}
	fifo := filepath.Join(imgs, "img09.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(base, "folder.yaml")
	os.WriteFile(cfg, []byte(strings.Replace(tinyRun, "  synthetic: {train_count: 32, val_count: 8, size: 96}\n",
		"  source: folder\n  root: "+imgs+"\n  val_fraction: 0\n  max_skipped_fraction: 0.2\n", 1)), 0o644)

	code, _, errOut := cliWithin(t, time.Minute, nil, "data", "preview", cfg, "--out", filepath.Join(base, "preview.png"), "--n", "9")
	if code != 0 {
		t.Errorf("data preview: exit %d\n%s", code, errOut)
	}
	code, out, errOut := cliWithin(t, time.Minute, nil, "infer", "--model", "../../infer/testdata/encoder32.onnx", "--input", imgs, "--out", filepath.Join(base, "infer"))
	if code != 0 || !strings.Contains(out, "9 images (1 unreadable skipped)") || !strings.Contains(errOut, "not a regular file (a FIFO)") {
		t.Errorf("infer: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = cliWithin(t, 2*time.Minute, nil, "run", cfg, "--run-dir", filepath.Join(base, "run"), "--set", "stages[0].steps_per_epoch=1")
	if code != 0 || !strings.Contains(errOut, "skipped unreadable image "+fifo) || !strings.Contains(errOut, "not a regular file (a FIFO)") {
		t.Errorf("run: exit %d\n%s", code, errOut)
	}
}

// TestNoWritableHome: with HOME pointing nowhere, commands run (gotch's
// init used to exit 1 before main).
func TestNoWritableHome(t *testing.T) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "GOTCH_CACHE=") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "config", "defaults")
	cmd.Env = append(env, "DIRA_TEST_CLI=1", "HOME=/proc/nohome")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "queue_size: 65536") {
		t.Fatalf("HOME=/proc/nohome dira config defaults: %v\n%s", err, out)
	}
}

// TestInferBoundsItsFlags: thread, worker and batch counts out of range are
// usage errors (exit 2) before any model is opened; --threads 100000 used
// to crash ONNX Runtime after 25 s and 1.4 GB, and --workers 0 silently
// meant 2.
func TestInferBoundsItsFlags(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	common := []string{"infer", "--model", "../../infer/testdata/encoder32.onnx", "--input", base, "--out", filepath.Join(base, "out")}
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--threads", "100000"}, "--threads must be in [0, 1024] (0: one per physical core), got 100000"},
		{[]string{"--threads", "-1"}, "--threads must be in [0, 1024]"},
		{[]string{"--workers", "0"}, "--workers must be in [1, 256], got 0"},
		{[]string{"--workers", "-4"}, "--workers must be in [1, 256], got -4"},
		{[]string{"--workers", "100000", "--batch", "1000000"}, "--batch must be in [1, 4096], got 1000000"},
	} {
		code, _, errOut := dira(t, append(common, tc.flags...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.flags, code, errOut, tc.want)
		}
	}
}

// TestRunRefusesWhatCannotFitInMemory: a valid config that needs more
// memory than the machine has is refused before the run folder is made,
// saying how much it needs.
func TestRunRefusesWhatCannotFitInMemory(t *testing.T) {
	torchtest.Pin(t)
	dir := filepath.Join(t.TempDir(), "run")
	code, _, errOut := dira(t, "run", "../../configs/demo.yaml", "--run-dir", dir, "--set", "data.image_size=4096",
		"--set", "stages[0].batch_size=4096", "--set", "stages[1].batch_size=4096", "--set", "moco.queue_size=4096")
	if code != 2 || !strings.Contains(errOut, "needs at least") || !strings.Contains(errOut, "activations") || !strings.Contains(errOut, "is available") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the run folder was made: %v", err)
	}
	avail := pipeline.AvailableMemory()
	t.Logf("%s (this machine: %.1f GB available)", strings.TrimSpace(errOut), float64(avail)/1e9)
}

func TestResumeCommand(t *testing.T) {
	for _, tc := range []struct {
		config, dir string
		sets        []string
		want        string
	}{
		{"configs/demo.yaml", "runs/demo", nil, "dira run configs/demo.yaml --run-dir runs/demo"},
		{"my config.yaml", "/tmp/it's here", []string{"stages[0].epochs=2", "run.seed=3"},
			`dira run 'my config.yaml' --run-dir '/tmp/it'\''s here' --set 'stages[0].epochs=2' --set run.seed=3`},
		{"c.yaml", "r", []string{"data.root=/data/x ray"}, "dira run c.yaml --run-dir r --set 'data.root=/data/x ray'"},
	} {
		if got := resumeCommand(tc.config, tc.dir, tc.sets); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	// What a shell makes of it is the arguments given.
	got := resumeCommand("my config.yaml", "/tmp/it's here", []string{"a=b c", "x='y'"})
	out, err := exec.Command("sh", "-c", "printf '%s\\n' "+strings.TrimPrefix(got, "dira run ")).Output()
	if err != nil || string(out) != "my config.yaml\n--run-dir\n/tmp/it's here\n--set\na=b c\n--set\nx='y'\n" {
		t.Errorf("sh reads %q as %q (%v)", got, out, err)
	}
}
