package memtest

import (
	"strings"
	"testing"
)

// TestPeakRSSSeesAllocation: a child that fills 64 MiB reports a peak of at
// least that much, and not absurdly more.
func TestPeakRSSSeesAllocation(t *testing.T) {
	const n = 64 << 20
	if Child(t) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		if b[n-1] != byte((n-1)%256) {
			t.Fatal("lost the buffer")
		}
		return
	}
	peak := PeakRSS(t)
	t.Logf("peak %s", MB(peak))
	if peak < n || peak > n+200<<20 {
		t.Fatalf("peak %s, want between 64 MB and 264 MB", MB(peak))
	}
}

// TestChildIsCapped: a child that asks for more than Headroom fails there
// with Go's out-of-memory error rather than taking the memory.
func TestChildIsCapped(t *testing.T) {
	if Child(t) {
		b := make([]byte, 2*Headroom)
		b[len(b)-1] = 1
		t.Logf("allocated %d bytes", len(b))
		return
	}
	_, out, err := run(t.Name())
	if err == nil || !strings.Contains(out, "out of memory") {
		t.Fatalf("child with a %d-byte allocation: err %v, output:\n%s", 2*Headroom, err, tail(out, 2000))
	}
}

// TestSubtestNames: subtests are selected by their full name.
func TestSubtestNames(t *testing.T) {
	t.Run("a b(c)", func(t *testing.T) {
		if Child(t) {
			return
		}
		if peak := PeakRSS(t); peak <= 0 {
			t.Fatalf("peak %d", peak)
		}
	})
}
