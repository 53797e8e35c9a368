package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes a YAML config into a temp folder and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cfg.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodConfig = `
run: {name: t, threads: 1}
data: {source: synthetic, image_size: 64}
model: {arch: resnet18}
moco: {queue_size: 64}
stages:
  - name: warmup
    epochs: 1
    batch_size: 8
  - name: adversarial
    epochs: 1
    batch_size: 8
`

func TestValidConfigs(t *testing.T) {
	cfg, err := Load(writeConfig(t, goodConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("good config rejected: %v", err)
	}
	// Stage defaults fill what the file leaves out, per kind.
	adv, ok := cfg.Stages[1].(*AdversarialStage)
	if !ok {
		t.Fatalf("stages[1] is %T, want *AdversarialStage", cfg.Stages[1])
	}
	if got := adv.Optimizer.LR; got != 0.03 {
		t.Errorf("stages[1].optimizer.lr = %v, want the default 0.03", got)
	}
	if got := adv.InitFrom; got != "last" {
		t.Errorf("stages[1].init_from = %q, want last", got)
	}
	if w := cfg.Stages[0].(*WarmupStage); w.Epochs != 1 || w.BatchSize != 8 || w.LogEverySteps != 10 {
		t.Errorf("stages[0] = %+v", w.Training)
	}
	if cfg.Model.Arch != "resnet18" || cfg.MoCo.Momentum != 0.999 {
		t.Errorf("file values or defaults lost: %+v %+v", cfg.Model, cfg.MoCo)
	}
}

// TestPrecision: run.precision defaults to fp32; bf16 is accepted from the
// file, --set and the environment.
func TestPrecision(t *testing.T) {
	cfg, err := Load(writeConfig(t, goodConfig), nil)
	if err != nil || cfg.Run.Precision != PrecisionFP32 {
		t.Fatalf("default precision %q (%v), want fp32", cfg.Run.Precision, err)
	}
	for _, src := range []struct {
		name, yaml string
		sets       []string
		env        string
	}{
		{"file", strings.Replace(goodConfig, "threads: 1", "threads: 1, precision: bf16", 1), nil, ""},
		{"set", goodConfig, []string{"run.precision=bf16"}, ""},
		{"env", goodConfig, nil, "bf16"},
	} {
		t.Run(src.name, func(t *testing.T) {
			if src.env != "" {
				t.Setenv("DIRA_RUN_PRECISION", src.env)
			}
			cfg, err := Load(writeConfig(t, src.yaml), src.sets)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Run.Precision != PrecisionBF16 {
				t.Fatalf("precision %q, want bf16", cfg.Run.Precision)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		sets []string
		want []string // each must appear in the error
		load bool     // the problem is found by Load (keys) rather than Validate
	}{
		{name: "unknown_key", yaml: goodConfig + "lossess: {mse_weight: 1}\n", load: true,
			want: []string{"lossess: unknown key", "line 13", `did you mean "losses"`}},
		{name: "unknown_nested_key", yaml: strings.Replace(goodConfig, "epochs: 1\n    batch_size: 8\n  - name: adv", "epochs: 1\n    batchsize: 8\n  - name: adv", 1), load: true,
			want: []string{"stages[0].batchsize: unknown key"}},
		{name: "negative_lr", yaml: goodConfig, sets: []string{"stages[1].optimizer.lr=-0.1"},
			want: []string{"stages[1].optimizer.lr: must be > 0, got -0.1"}},
		{name: "queue_not_multiple", yaml: goodConfig, sets: []string{"moco.queue_size=100"},
			want: []string{"moco.queue_size: must be a multiple of stages[0].batch_size (8), got 100"}},
		{name: "missing_data_folder", yaml: goodConfig, sets: []string{"data.source=folder", "data.root=/nonexistent/xray"},
			want: []string{"data.root", "/nonexistent/xray"}},
		{name: "all_at_once", yaml: goodConfig + "typo: 1\n", load: true,
			sets: []string{"stages[1].optimizer.lr=-0.1"},
			want: []string{"typo: unknown key"}},
		{name: "bad_arch", yaml: goodConfig, sets: []string{"model.arch=resnet51"},
			want: []string{`model.arch: must be one of`, `"resnet51"`}},
		{name: "zero_threads", yaml: goodConfig, sets: []string{"run.threads=0"},
			want: []string{"run.threads: must be >= 1, got 0"}},
		{name: "fp16_on_cpu_build", yaml: goodConfig, sets: []string{"run.precision=fp16"},
			want: []string{"run.precision: fp16 needs a CUDA build of libtorch; this libtorch (1.13", "is CPU-only: use bf16"}},
		{name: "unknown_precision", yaml: goodConfig, sets: []string{"run.precision=fp8"},
			want: []string{`run.precision: must be fp32, bf16 or fp16, got "fp8"`}},
		{name: "unknown_stage", yaml: goodConfig, sets: []string{"stages[0].name=pretrain"}, load: true,
			want: []string{`stages[0].name: must be one of`}},
		{name: "training_key_on_export", yaml: goodConfig + "  - name: export\n    from: adversarial\n    optimizer: {lr: 5}\n    epochs: 99\n", load: true,
			want: []string{"stages[2].optimizer: not a key of an export stage", "stages[2].epochs: not a key of an export stage", "line 15", "line 16"}},
		{name: "set_training_key_on_export", yaml: goodConfig + "  - name: export\n    from: adversarial\n", load: true,
			sets: []string{"stages[2].optimizer.lr=5", "stages[2].epochs=99"},
			want: []string{"--set stages[2].optimizer.lr=5: stages[2].optimizer: not a key of an export stage", "--set stages[2].epochs=99: stages[2].epochs: not a key of an export stage"}},
		{name: "export_key_on_warmup", yaml: goodConfig, sets: []string{"stages[0].tolerance=1"}, load: true,
			want: []string{"stages[0].tolerance: not a key of a warmup stage (it belongs to export"}},
		{name: "disc_key_on_warmup", yaml: strings.Replace(goodConfig, "epochs: 1\n    batch_size: 8\n  - name: adv", "epochs: 1\n    init_from: best\n    batch_size: 8\n  - name: adv", 1), load: true,
			want: []string{"stages[0].init_from: not a key of a warmup stage (it belongs to adversarial)", "line 9"}},
		{name: "restoration_is_not_a_key", yaml: strings.Replace(goodConfig, "image_size: 64", "image_size: 64, restoration: false", 1), load: true,
			want: []string{"data.restoration: unknown key"}},
		{name: "not_an_integer", yaml: goodConfig, sets: []string{"run.threads=2.7"}, load: true,
			want: []string{"run.threads: must be an integer, got 2.7"}},
		{name: "integer_overflow", yaml: goodConfig, sets: []string{"stages[0].epochs=1e30"}, load: true,
			want: []string{"stages[0].epochs: must be an integer of at most 64 bits"}},
		{name: "negative_seed", yaml: goodConfig, sets: []string{"run.seed=-1"}, load: true,
			want: []string{"run.seed: must be >= 0, got -1"}},
		{name: "nan", yaml: goodConfig, sets: []string{"moco.momentum=.nan"}, load: true,
			want: []string{"moco.momentum: must be a finite number, got NaN"}},
		{name: "infinite", yaml: goodConfig, sets: []string{"losses.mse_weight=.inf"}, load: true,
			want: []string{"losses.mse_weight: must be a finite number, got +Inf"}},
		{name: "second_document", yaml: goodConfig + "---\nrun: {name: other}\n", load: true,
			want: []string{"line 14: a second YAML document"}},
		{name: "no_effect_key", yaml: strings.Replace(goodConfig, "image_size: 64", "image_size: 64, val_fraction: 0.3", 1), load: true,
			want: []string{"data.val_fraction: has no effect with data.source synthetic (used by source folder); remove it", "line 3"}},
		{name: "milestones_without_step", yaml: goodConfig, sets: []string{"stages[0].optimizer.milestones=[5]"}, load: true,
			want: []string{"stages[0].optimizer.milestones: has no effect with schedule cosine"}},
		{name: "batch_vs_ghost_groups", yaml: goodConfig, sets: []string{"stages[0].batch_size=6", "moco.queue_size=48"},
			want: []string{"stages[0].batch_size: must be a multiple of moco.ghost_bn_groups (4), got 6"}},
		{name: "bad_schedule", yaml: goodConfig, sets: []string{"stages[0].optimizer.schedule=linear"},
			want: []string{"stages[0].optimizer.schedule: must be cosine, step or constant"}},
		{name: "export_from_missing", yaml: goodConfig + "  - name: export\n    from: moco\n",
			want: []string{"stages[2].from: must name a training stage listed before it"}},
		{name: "set_unknown_key", yaml: goodConfig, sets: []string{"model.depth=3"}, load: true,
			want: []string{"--set model.depth=3", "model.depth: unknown key"}},
		{name: "set_out_of_range", yaml: goodConfig, sets: []string{"stages[5].epochs=3"}, load: true,
			want: []string{"stages[5]", "has 2 elements"}},
		{name: "bad_type", yaml: goodConfig, sets: []string{"run.threads=many"}, load: true,
			want: []string{"run.threads"}},
		// Upper bounds: each of these ended in a fatal out-of-memory.
		{name: "synthetic_size", yaml: goodConfig, sets: []string{"data.synthetic.size=200000"},
			want: []string{"data.synthetic.size: must be at most 8192, got 200000"}},
		{name: "queue_size", yaml: goodConfig, sets: []string{"moco.queue_size=1e9"},
			want: []string{"moco.queue_size: must be at most 1048576, got 1000000000"}},
		{name: "decoder_width", yaml: goodConfig, sets: []string{"model.decoder_channels=[100000,128,64,32,16]"},
			want: []string{"model.decoder_channels[0]: must be at most 4096, got 100000"}},
		{name: "image_size", yaml: goodConfig, sets: []string{"data.image_size=32000"},
			want: []string{"data.image_size: must be at most 4096, got 32000"}},
		{name: "threads", yaml: goodConfig, sets: []string{"run.threads=100000"},
			want: []string{"run.threads: must be at most 1024, got 100000"}},
		{name: "workers", yaml: goodConfig, sets: []string{"data.workers=100000", "data.prefetch=1000"},
			want: []string{"data.workers: must be at most 256, got 100000", "data.prefetch: must be at most 64, got 1000"}},
		{name: "batch_and_epochs", yaml: goodConfig, sets: []string{"stages[1].batch_size=131072", "moco.queue_size=131072", "stages[0].epochs=2000000"},
			want: []string{"stages[1].batch_size: must be at most 65536, got 131072", "stages[0].epochs: must be at most 1000000, got 2000000"}},
		{name: "finetune_bounds", yaml: goodConfig + "  - {name: classify, batch_size: 100000, data: {workers: 1000, image_size: 8192}}\n",
			want: []string{"stages[2].batch_size: must be at most 65536, got 100000", "stages[2].data.workers: must be at most 256, got 1000",
				"stages[2].data.image_size: must be at most 4096, got 8192"}},
		{name: "skip_fraction", yaml: goodConfig, sets: []string{"data.max_skipped_fraction=1.5"},
			want: []string{"data.max_skipped_fraction: must be in [0, 1], got 1.5"}},
		{name: "skip_fraction_without_skip", yaml: goodConfig, sets: []string{"data.bad_images=fail", "data.max_skipped_fraction=0.5"}, load: true,
			want: []string{"data.max_skipped_fraction: has no effect with data.bad_images fail (used by bad_images skip); remove it"}},
		{name: "int8_without_calibration", yaml: goodConfig + "  - {name: export, precision: int8, calibration_method: median}\n",
			want: []string{"stages[2].calibration: precision int8 needs calibration images", "stages[2].calibration_method: must be minmax or percentile, got \"median\""}},
		{name: "bad_precision", yaml: goodConfig + "  - {name: export, precision: int4}\n",
			want: []string{"stages[2].precision: must be fp32, int8 or fp16, got \"int4\""}},
		{name: "calibration_without_int8", yaml: goodConfig + "  - {name: export, precision: fp16, calibration_count: 8}\n  - {name: export, calibration: /tmp}\n", load: true,
			want: []string{"stages[2].calibration_count: has no effect with precision fp16 (used by precision int8); remove it",
				"stages[3].calibration: has no effect with precision fp32 (used by precision int8 and fp16); remove it"}},
		{name: "yaml_syntax", yaml: "run: {name: [\n", load: true,
			want: []string{"cfg.yaml", "line"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tc.yaml), tc.sets)
			if tc.load {
				if err == nil {
					t.Fatal("Load accepted the config")
				}
			} else {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				err = cfg.Validate()
				if err == nil {
					t.Fatal("Validate accepted the config")
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// TestValidateReportsEveryProblem: four problems, four lines, one per YAML path.
func TestValidateReportsEveryProblem(t *testing.T) {
	cfg, err := Load(writeConfig(t, goodConfig), []string{
		"stages[0].optimizer.lr=-0.1", "moco.queue_size=100", "data.source=folder",
		"data.root=/nonexistent/xray", "run.threads=0",
	})
	if err != nil {
		t.Fatal(err)
	}
	probs := cfg.Problems()
	paths := map[string]bool{}
	for _, p := range probs {
		path, _, _ := strings.Cut(p.Error(), ":")
		paths[path] = true
	}
	for _, want := range []string{"stages[0].optimizer.lr", "moco.queue_size", "data.root", "run.threads"} {
		if !paths[want] {
			t.Errorf("no problem reported for %s; got %v", want, probs)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("DIRA_RUN_SEED", "77")
	t.Setenv("DIRA_MOCO_TEMPERATURE", "0.07")
	cfg, err := Load(writeConfig(t, goodConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Run.Seed != 77 || cfg.MoCo.Temperature != 0.07 {
		t.Fatalf("env overrides not applied: seed %d, temperature %g", cfg.Run.Seed, cfg.MoCo.Temperature)
	}
	// A variable under a config section that names no key is refused.
	t.Setenv("DIRA_RUN_SEEED", "1")
	if _, err := Load(writeConfig(t, goodConfig), nil); err == nil || !strings.Contains(err.Error(), "environment DIRA_RUN_SEEED: names no config key") {
		t.Errorf("a mistyped variable: %v", err)
	}
	os.Unsetenv("DIRA_RUN_SEEED")
	// Parse (a checkpoint's saved config) does not read the environment.
	saved, err := Parse("saved", []byte(goodConfig), nil)
	if err != nil || saved.Run.Seed != 0 {
		t.Errorf("Parse took the environment: seed %d, %v", saved.Run.Seed, err)
	}
	// --set wins over the environment.
	cfg, err = Load(writeConfig(t, goodConfig), []string{"run.seed=5"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Run.Seed != 5 {
		t.Fatalf("--set run.seed=5 gave %d", cfg.Run.Seed)
	}
}

func TestDefaultsYAMLRoundTrips(t *testing.T) {
	b, err := DefaultsYAML()
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "- name:") {
			continue
		}
		if strings.HasSuffix(l, ":") {
			continue // a mapping whose comment is the line above
		}
		if !strings.Contains(l, " # ") {
			t.Errorf("key without a comment: %q", line)
		}
	}
	// The printed defaults load back as a valid config.
	cfg, err := Load(writeConfig(t, text), nil)
	if err != nil {
		t.Fatalf("defaults do not load back: %v", err)
	}
	if len(cfg.Stages) != len(StageKinds()) {
		t.Fatalf("defaults list %d stages, want %d", len(cfg.Stages), len(StageKinds()))
	}
	// Each kind shows its own keys only.
	for _, entry := range strings.Split(text, "  - name: ")[1:] {
		kind, _, _ := strings.Cut(entry, " ")
		has := func(key string) bool { return strings.Contains(entry, "\n    "+key+":") }
		switch kind {
		case StageExport:
			if has("optimizer") || has("epochs") || !has("tolerance") {
				t.Errorf("export entry:\n%s", entry)
			}
		case StageWarmup, StageMoCo:
			if has("tolerance") || has("disc_optimizer") || has("init_from") || !has("optimizer") {
				t.Errorf("%s entry:\n%s", kind, entry)
			}
		case StageAdversarial:
			if has("tolerance") || !has("disc_optimizer") || !has("init_from") {
				t.Errorf("adversarial entry:\n%s", entry)
			}
		}
	}
}
