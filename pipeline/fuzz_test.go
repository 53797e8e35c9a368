package pipeline

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: config loading never panics on any bytes; a config it accepts
// validates without panicking and survives the round trip every checkpoint
// makes (Config.YAML, then Parse of the embedded text) unchanged.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("..", "configs", "*.yaml"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	if len(paths) == 0 {
		f.Fatal("no configs/*.yaml to seed from")
	}
	f.Add([]byte("run:\n  seed: 3\nstages:\n  - kind: warmup\n    epochs: 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse("fuzz.yaml", b, nil)
		if err != nil {
			return
		}
		_ = cfg.Validate()
		y, err := cfg.YAML()
		if err != nil {
			t.Fatalf("YAML of an accepted config: %v", err)
		}
		back, err := Parse("round-trip.yaml", y, nil)
		if err != nil {
			t.Fatalf("the YAML of an accepted config does not parse: %v\n%s", err, y)
		}
		// Compared as text: a list key decodes to nil or to an empty slice
		// depending on how it was written, which means the same config.
		y2, err := back.YAML()
		if err != nil {
			t.Fatalf("YAML of the round-tripped config: %v", err)
		}
		if string(y) != string(y2) {
			t.Fatalf("the config changed in the YAML round trip:\n%s\nbecame\n%s", y, y2)
		}
	})
}
