package stages

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/pipeline"
)

var update = flag.Bool("update", false, "rewrite testdata/demo-losses.golden.jsonl from this run")

// TestDemoLossesGolden runs the pre-training stages of configs/demo.yaml (what
// `make demo` runs) and compares every metrics.jsonl record, per-step losses,
// learning rates and epoch summaries, with the golden taken before the stage
// kinds were restructured. Equality is exact: a refactor of the training code
// must not change a single bit of what it computes.
func TestDemoLossesGolden(t *testing.T) {
	torchtest.Pin(t)
	cfg, err := pipeline.Load("../configs/demo.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pre pipeline.Stages
	for _, s := range cfg.Stages {
		if s.Kind() == pipeline.StageWarmup || s.Kind() == pipeline.StageAdversarial {
			pre = append(pre, s)
		}
	}
	cfg.Stages = pre
	// As `dira run` sets them: the thread count decides libtorch's reduction
	// order, so the golden holds only for the same one.
	if err := torch.SetThreads(cfg.Run.Threads); err != nil {
		t.Fatal(err)
	}
	torch.Seed(cfg.Run.Seed)
	dir := filepath.Join(t.TempDir(), "demo")
	if err := runStages(t, cfg, dir, Hooks{}); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for _, s := range pre {
		f, err := os.Open(filepath.Join(dir, s.Kind(), "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			delete(rec, "img_per_s") // wall-clock speed, not a computed value
			rec["stage"] = s.Kind()
			b, _ := json.Marshal(rec)
			got.Write(append(b, '\n'))
		}
		f.Close()
	}
	golden := filepath.Join("testdata", "demo-losses.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	gotLines, wantLines := bytes.Split(bytes.TrimSpace(got.Bytes()), []byte("\n")), bytes.Split(bytes.TrimSpace(want), []byte("\n"))
	if len(gotLines) != len(wantLines) {
		t.Fatalf("%d metrics records, golden has %d", len(gotLines), len(wantLines))
	}
	for i := range wantLines {
		var g, w map[string]any
		if err := json.Unmarshal(gotLines[i], &g); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(wantLines[i], &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("record %d differs from the golden:\n got  %s\n want %s", i+1, gotLines[i], wantLines[i])
		}
	}
}
