package data

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDefaultLabeledConfigValid(t *testing.T) {
	c := DefaultLabeledConfig()
	if errs := c.Validate("finetune.data"); len(errs) > 0 {
		t.Fatalf("default config invalid: %v", errs)
	}
	for _, task := range []string{TaskMultiClass, TaskSegmentation} {
		c.Task = task
		if task == TaskSegmentation {
			c.Normalization = NormNone.Name
		}
		if errs := c.Validate("finetune.data"); len(errs) > 0 {
			t.Fatalf("default config with task %s invalid: %v", task, errs)
		}
	}
	d := DefaultLabeledConfig()
	if d.LabelSeed != 99 || d.Classify.RotateDegrees != 7 || d.Classify.RotateInterpolation != "nearest" || d.ResizeSize != 256 ||
		d.ImageSize != 224 || !d.TenCrop || d.Segment.FlipP != 0 || !d.Segment.AugmentVal {
		t.Errorf("defaults differ from the official code: %+v", d)
	}
}

func TestLabeledConfigValidate(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "train.txt")
	if err := os.WriteFile(list, []byte("a.png 0 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"img", "left", "right"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "nope")
	for _, tc := range []struct {
		name string
		edit func(c *LabeledConfig)
		want []string
	}{
		{"task", func(c *LabeledConfig) { c.Task = "detection" }, []string{`ft.task: must be one of multilabel, multiclass, segmentation, got "detection"`}},
		{"list_ok", func(c *LabeledConfig) {
			c.Source, c.Root, c.Train.List, c.Classes = SourceList, dir, list, 2
		}, nil},
		{"list_missing", func(c *LabeledConfig) {
			c.Source, c.Root, c.Train.List, c.Val.List, c.Classes = SourceList, dir, list, missing, 0
		}, []string{`ft.val.list: file "` + missing + `" does not exist`, "ft.classes: must be >= 1 label column"}},
		{"list_no_train", func(c *LabeledConfig) { c.Source, c.Classes = SourceList, 14 }, []string{"ft.train: must be set for source list"}},
		{"list_format", func(c *LabeledConfig) {
			c.Source, c.Train.List, c.Classes, c.ListFormat = SourceList, list, 1, "tab"
		}, []string{`ft.list_format: must be spaces or comma, got "tab"`}},
		{"folder_multilabel", func(c *LabeledConfig) {
			c.Source, c.Root, c.Train.Images = SourceFolder, dir, "img"
		}, []string{"ft.source: folder has no multi-label layout"}},
		{"segmentation_folder_ok", func(c *LabeledConfig) {
			c.Task, c.Source, c.Root, c.Normalization = TaskSegmentation, SourceFolder, dir, "none"
			c.Train = SplitConfig{Images: "img", Masks: []string{"left", "right"}}
		}, nil},
		{"segmentation_folder_bad", func(c *LabeledConfig) {
			c.Task, c.Source, c.Root, c.Normalization = TaskSegmentation, SourceFolder, dir, "chestx-ray"
			c.Train = SplitConfig{Images: "img"}
			c.Test = SplitConfig{Images: "img", Masks: []string{"lung"}}
		}, []string{"ft.train.masks: must name at least one mask folder", `ft.test.masks[0]: folder "` + filepath.Join(dir, "lung") + `" does not exist`,
			`ft.normalization: must be imagenet or none for segmentation, got "chestx-ray"`}},
		{"synthetic", func(c *LabeledConfig) {
			c.Synthetic.TrainCount, c.Synthetic.Findings, c.Synthetic.Prevalence = 0, []string{"nodule", "fracture", "nodule"}, 1
		}, []string{"ft.synthetic.train_count: must be >= 1", `ft.synthetic.findings[1]: must be a distinct one of nodule, opacity, effusion, cardiomegaly, got "fracture"`,
			`ft.synthetic.findings[2]: must be a distinct one`, "ft.synthetic.prevalence: must be in (0, 1), got 1"}},
		{"fraction", func(c *LabeledConfig) { c.LabelPercent, c.LabelSplits = 0, []string{"train", "dev"} },
			[]string{"ft.label_percent: must be in (0, 100], got 0", `ft.label_splits[1]: must be train, val or test, got "dev"`}},
		{"sizes", func(c *LabeledConfig) { c.ImageSize, c.ResizeSize = 64, 56 }, []string{"ft.resize_size: must be >= image_size 64, got 56"}},
		{"image_size", func(c *LabeledConfig) { c.ImageSize = 50 }, []string{"ft.image_size: must be a positive multiple of 32, got 50"}},
		{"loader", func(c *LabeledConfig) { c.Workers, c.Prefetch, c.BadImages = 0, 0, "ignore" },
			[]string{"ft.workers: must be >= 1", "ft.prefetch: must be >= 1", `ft.bad_images: must be skip or fail, got "ignore"`}},
		{"classify", func(c *LabeledConfig) {
			c.Classify.CropScale, c.Classify.FlipP, c.Classify.RotateInterpolation = []float64{0.5, 0.1}, 2, "cubic"
		}, []string{"ft.classify.crop_scale: min 0.5 is above max 0.1", "ft.classify.flip_p: must be a probability in [0, 1], got 2",
			`ft.classify.rotate_interpolation: must be nearest or bilinear, got "cubic"`}},
		{"segment", func(c *LabeledConfig) {
			c.Segment.DistortP, c.Segment.GammaLimit, c.Segment.GridSteps, c.Segment.ElasticSigma = -1, []float64{120, 80}, 0, 0
		}, []string{"ft.segment.distort_p: must be a probability", "ft.segment.elastic_sigma: must be > 0", "ft.segment.gamma_limit: must be [min, max] integers",
			"ft.segment.grid_steps: must be >= 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultLabeledConfig()
			tc.edit(&c)
			errs := c.Validate("ft")
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

// TestLabeledFieldDocs: FieldDocs documents exactly the YAML keys of
// LabeledConfig, each with its field's one-line comment in labeled_config.go.
func TestLabeledFieldDocs(t *testing.T) {
	docs := LabeledConfig{}.FieldDocs()
	keys := yamlKeys(t, reflect.TypeOf(LabeledConfig{}), "")
	if len(keys) != len(docs) {
		t.Errorf("%d YAML keys but %d FieldDocs entries", len(keys), len(docs))
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "labeled_config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	comments := map[string]map[string]string{}
	ast.Inspect(file, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return true
		}
		m := map[string]string{}
		for _, f := range st.Fields.List {
			tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("yaml")
			if f.Doc == nil || len(f.Doc.List) != 1 {
				t.Errorf("%s.%s: needs exactly one comment line", ts.Name.Name, f.Names[0].Name)
				continue
			}
			m[tag] = strings.TrimSpace(strings.TrimPrefix(f.Doc.List[0].Text, "//"))
		}
		comments[ts.Name.Name] = m
		return true
	})
	structOf := map[string]string{"": "LabeledConfig", "synthetic.": "LabeledSyntheticConfig", "classify.": "ClassifyAugment",
		"segment.": "SegmentAugment", "train.": "SplitConfig", "val.": "SplitConfig", "test.": "SplitConfig"}
	for _, k := range keys {
		prefix, leaf := "", k
		if i := strings.LastIndex(k, "."); i >= 0 {
			prefix, leaf = k[:i+1], k[i+1:]
		}
		if c := comments[structOf[prefix]][leaf]; c != docs[k] {
			t.Errorf("key %q: field comment\n  %q\ndiffers from FieldDocs\n  %q", k, c, docs[k])
		}
	}
}
