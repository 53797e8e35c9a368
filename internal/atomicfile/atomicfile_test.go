package atomicfile

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.json")
	if err := WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "two" {
		t.Fatalf("content %q, want two", got)
	}
	assertNoTemps(t, filepath.Dir(p))
}

// TestFailureKeepsOldFile injects a failure halfway through a write: the old
// content stays under the final name and no temporary file is left.
func TestFailureKeepsOldFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "last.ckpt")
	if err := WriteFile(p, []byte("good checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := Write(p, 0o644, func(w io.Writer) error {
		io.WriteString(w, "half a checkp")
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v, want the injected error naming %s", err, p)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "good checkpoint" {
		t.Fatalf("final file changed to %q", got)
	}
	assertNoTemps(t, filepath.Dir(p))
}

// TestKilledWriterLeavesNoPartialFile runs a writer in a child process and
// SIGKILLs it halfway: the final name never holds a partial file.
func TestKilledWriterLeavesNoPartialFile(t *testing.T) {
	if os.Getenv("ATOMICFILE_CHILD") != "" {
		p := os.Getenv("ATOMICFILE_CHILD")
		Write(p, 0o644, func(w io.Writer) error {
			io.WriteString(w, "partial")
			os.WriteFile(p+".ready", nil, 0o644)
			select {} // wait to be killed
		})
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "out.onnx")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterLeavesNoPartialFile$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_CHILD="+p)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(p + ".ready"); err == nil {
			break
		}
		if i > 2000 {
			cmd.Process.Kill()
			t.Fatal("child never started writing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("final name exists after the writer was killed: %v", err)
	}
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}
