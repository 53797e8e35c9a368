package pipeline

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// isTemp reports whether a name in a run folder is one of the temporary
// files or folders dira's writers make there and rename or remove when
// done: package atomicfile's ".<name>.tmp-<random>" and the export stage's
// ".export-tmp-<random>/" folder. Only a process killed mid-write leaves
// one behind.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && (strings.Contains(name, ".tmp-") || strings.HasPrefix(name, ".export-tmp-"))
}

// removeTemps removes the temporary files and folders under the run folder
// dir and says what it removed on log. The caller holds the run's lock, so
// no live process is writing them: every writer in a run folder is the run
// that holds the lock.
func removeTemps(dir string, log io.Writer) error {
	var (
		names []string
		bytes int64
	)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir || !isTemp(d.Name()) {
			return nil
		}
		bytes += size(p)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		names = append(names, rel)
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("run %s: removing temporary files left by an interrupted run: %w", dir, err)
	}
	if len(names) > 0 {
		fmt.Fprintf(log, "run %s: removed %d temporary file(s) left by an interrupted run (%.1f MB): %s\n",
			dir, len(names), float64(bytes)/1e6, strings.Join(names, ", "))
	}
	return nil
}

// size is the total size of the files at or under p.
func size(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
