package stages

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dira/internal/runlock"
	"dira/internal/torch/torchtest"
	"dira/pipeline"
)

// TestImportRefusesALockedRunFolder: while a run holds its folder, dira
// import into it is refused, naming the holder, before any file is read.
func TestImportRefusesALockedRunFolder(t *testing.T) {
	torchtest.Pin(t)
	dir := t.TempDir()
	l, _, err := runlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, err = Import(pipeline.Default(), ImportOptions{Gen: filepath.Join(dir, "missing.pth"), Out: dir})
	if !errors.Is(err, runlock.ErrHeld) || !strings.Contains(err.Error(), fmt.Sprintf("in use by dira PID %d", os.Getpid())) {
		t.Fatalf("err = %v, want the folder's holder named", err)
	}
}
