package runlock

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets a test run this binary as a lock holder: with
// RUNLOCK_HOLD=dir it takes the lock of dir, prints "locked" and waits.
func TestMain(m *testing.M) {
	if dir := os.Getenv("RUNLOCK_HOLD"); dir != "" {
		if _, _, err := Acquire(dir); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestAcquireRelease(t *testing.T) {
	dir := t.TempDir()
	l, stale, err := Acquire(dir)
	if err != nil || stale != nil {
		t.Fatalf("first: %v, stale %v", err, stale)
	}
	// A second holder, even in the same process, is refused and told who
	// holds the folder.
	_, _, err = Acquire(dir)
	var held *HeldError
	host, _ := os.Hostname()
	if !errors.As(err, &held) || !errors.Is(err, ErrHeld) || held.Holder.PID != os.Getpid() || held.Holder.Host != host ||
		!strings.Contains(err.Error(), "PID "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !os.IsNotExist(err) {
		t.Errorf("lock file left after Release: %v", err)
	}
	l, stale, err = Acquire(dir)
	if err != nil || stale != nil {
		t.Fatalf("after release: %v, stale %v", err, stale)
	}
	l.Release()
	l.Release() // twice is fine
}

// TestHolderKilled: a lock held by another process refuses at once, naming
// its PID and host; after that process is killed (SIGKILL: no cleanup),
// the lock is taken over and reported stale with the dead holder's PID.
func TestHolderKilled(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RUNLOCK_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("holder said %q", line)
	}
	start := time.Now()
	_, _, err = Acquire(dir)
	var held *HeldError
	if !errors.As(err, &held) || held.Holder.PID != cmd.Process.Pid || time.Since(start) > 2*time.Second {
		t.Fatalf("while held: %v after %v; want a HeldError naming PID %d at once", err, time.Since(start), cmd.Process.Pid)
	}
	t.Logf("refused: %v", err)
	cmd.Process.Kill()
	cmd.Wait()
	l, stale, err := Acquire(dir)
	if err != nil || stale == nil || stale.PID != cmd.Process.Pid {
		t.Fatalf("after the holder died: %v, stale %+v; want the lock, and PID %d reported", err, stale, cmd.Process.Pid)
	}
	l.Release()
}
