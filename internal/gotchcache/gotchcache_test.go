package gotchcache

import (
	"os"
	"path/filepath"
	"testing"
)

func TestChoose(t *testing.T) {
	home, tmp := t.TempDir(), t.TempDir()
	if got := Choose("/my/cache", "/proc/nohome", tmp, 7); got != "" {
		t.Errorf("GOTCH_CACHE set by the user: got %q, want it left alone", got)
	}
	if got := Choose("", home, tmp, 7); got != "" {
		t.Errorf("writable home: got %q, want gotch's own default", got)
	}
	if fi, err := os.Stat(filepath.Join(home, ".cache", "gotch")); err != nil || !fi.IsDir() {
		t.Errorf("writable home: $HOME/.cache/gotch not made: %v", err)
	}
	want := filepath.Join(tmp, "dira-gotch-cache-7")
	for _, h := range []string{"/proc/nohome", "", "/dev/null"} {
		if got := Choose("", h, tmp, 7); got != want {
			t.Errorf("HOME=%q: got %q, want %q", h, got, want)
		}
	}
	if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
		t.Errorf("fallback folder not made: %v", err)
	}
	// A temporary folder nothing can be made in: the folder itself, which
	// exists, is all gotch needs.
	if got := Choose("", "/proc/nohome", "/proc", 7); got != "/proc" {
		t.Errorf("unwritable tmp: got %q, want /proc", got)
	}
}
