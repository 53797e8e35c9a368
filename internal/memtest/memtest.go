package memtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// childEnv carries the name of the test a child process is to run.
const childEnv = "DIRA_MEMTEST_CHILD"

// Headroom is the address space a child may map beyond what it had when the
// measured test started: far more than any refusal needs, far less than the
// gigabytes a reader that trusts a declared size would ask for.
const Headroom = 2 << 30

// Child reports whether this process is the child that PeakRSS started for
// t. In the child it also caps the address space (Headroom above the current
// mappings), so that code allocating from a hostile size fails there with
// Go's "out of memory" instead of growing. A test calls it first:
//
//	if memtest.Child(t) {
//		... refuse the hostile file, check the error with t.Fatal ...
//		return
//	}
//	peak := memtest.PeakRSS(t)
func Child(t testing.TB) bool {
	if os.Getenv(childEnv) != t.Name() {
		return false
	}
	vm, err := statusBytes("VmSize:")
	if err != nil {
		t.Fatalf("memtest: %v", err)
	}
	lim := uint64(vm + Headroom)
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
		t.Fatalf("memtest: limit the address space: %v", err)
	}
	t.Cleanup(func() {
		hwm, err := statusBytes("VmHWM:")
		if err != nil {
			t.Errorf("memtest: %v", err)
			return
		}
		fmt.Printf("%s%d\n", peakLine, hwm)
	})
	return true
}

// peakLine prefixes the child's report of its peak RSS on its output.
const peakLine = "memtest: peak RSS bytes "

// PeakRSS runs test t again, alone, in a child process of the same test
// binary (where Child(t) is true) and returns the child's peak resident set
// size in bytes. The test fails when the child does: its output is logged.
func PeakRSS(t testing.TB) int64 {
	t.Helper()
	peak, out, err := run(t.Name())
	if err != nil {
		t.Fatalf("memtest: %v:\n%s", err, tail(out, 4000))
	}
	return peak
}

// run re-executes the test binary with only the test called name, as the
// child for name, and returns the child's peak RSS and output; err is set
// when the child did not pass.
func run(name string) (peak int64, out string, err error) {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+name)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	runErr := cmd.Run()
	out = buf.String()
	if cmd.ProcessState == nil {
		return 0, out, fmt.Errorf("start the child for %s: %w", name, runErr)
	}
	// Not getrusage's ru_maxrss: a child started with vfork semantics, as
	// os/exec starts it, inherits the parent's high-water mark. The child
	// reports the peak of its own address space (VmHWM) instead.
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, peakLine); ok {
			peak, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	top := strings.SplitN(name, "/", 2)[0]
	if runErr != nil || !strings.Contains(out, "--- PASS: "+top) {
		return peak, out, fmt.Errorf("the child running %s failed (%v)", name, runErr)
	}
	if peak <= 0 {
		return peak, out, fmt.Errorf("the child running %s did not report its peak RSS", name)
	}
	return peak, out, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// statusBytes reads a "kB" field of /proc/self/status (VmSize, VmHWM) in
// bytes.
func statusBytes(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				break
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// MB renders a byte count in mebibytes for test logs.
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
