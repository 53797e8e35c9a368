package data

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestDefaultConfigValid(t *testing.T) {
	if errs := DefaultConfig().Validate("data"); len(errs) > 0 {
		t.Fatalf("default config invalid: %v", errs)
	}
	a := DefaultConfig().Augment
	if a.FlipTarget || a.SwapRejectOverlap {
		t.Error("defaults must reproduce the official code (flip_target and swap_reject_overlap false)")
	}
	if !DefaultConfig().Restoration {
		t.Error("default mode must be dir/dira (restoration true)")
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "train.txt")
	if err := os.WriteFile(list, []byte("a.png 0 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope")
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want []string // substrings, one error each
	}{
		{"workers_zero", func(c *Config) { c.Workers = 0 }, []string{"data.workers: must be >= 1, got 0"}},
		{"prefetch_zero", func(c *Config) { c.Prefetch = 0 }, []string{"data.prefetch: must be >= 1, got 0"}},
		{"image_size", func(c *Config) { c.ImageSize = 100 }, []string{"data.image_size: must be a positive multiple of 32, got 100"}},
		{"source", func(c *Config) { c.Source = "s3" }, []string{`data.source: must be one of synthetic, list, folder, got "s3"`}},
		{"bad_images", func(c *Config) { c.BadImages = "ignore" }, []string{`data.bad_images: must be skip or fail, got "ignore"`}},
		{"root_missing", func(c *Config) { c.Source, c.Root, c.TrainList = SourceList, missing, list },
			[]string{`data.root: folder "` + missing + `" does not exist (set data.root or use data.source: synthetic)`}},
		{"root_empty", func(c *Config) { c.Source = SourceFolder }, []string{"data.root: must be set for source folder"}},
		{"lists", func(c *Config) { c.Source, c.Root, c.TrainList, c.ValList = SourceList, dir, "", missing },
			[]string{"data.train_list: must be set", `data.val_list: file "` + missing + `" does not exist`}},
		{"list_ok", func(c *Config) { c.Source, c.Root, c.TrainList = SourceList, dir, list }, nil},
		{"folder_fields", func(c *Config) { c.Source, c.Root, c.Extensions, c.ValFraction = SourceFolder, dir, []string{"png"}, 1 },
			[]string{`data.extensions[0]: must start with a dot, got "png"`, "data.val_fraction: must be in [0, 1), got 1"}},
		{"synthetic", func(c *Config) { c.Synthetic.TrainCount, c.Synthetic.Size = 0, 8 },
			[]string{"data.synthetic.train_count: must be >= 1, got 0", "data.synthetic.size: must be >= 16 pixels, got 8"}},
		{"crop_scale", func(c *Config) { c.Augment.CropScale = []float64{0.5, 0.2} }, []string{"data.augment.crop_scale: min 0.5 is above max 0.2"}},
		{"crop_scale_len", func(c *Config) { c.Augment.CropScale = []float64{0.5} }, []string{"data.augment.crop_scale: must be [min, max], got 1 values"}},
		{"crop_scale_zero", func(c *Config) { c.Augment.CropScale = []float64{0, 1} }, []string{"data.augment.crop_scale: values must be in (0, 1]"}},
		{"probabilities", func(c *Config) { c.Augment.JitterP, c.Augment.FlipP = 1.5, -0.1 },
			[]string{"data.augment.jitter_p: must be a probability in [0, 1], got 1.5", "data.augment.flip_p: must be a probability in [0, 1], got -0.1"}},
		{"branches", func(c *Config) { c.Augment.InpaintP, c.Augment.SwapP = 0.6, 0.5 }, []string{"data.augment.swap_p: inpaint_p + outpaint_p + swap_p must be <= 1"}},
		{"hue", func(c *Config) { c.Augment.Hue = 0.7 }, []string{"data.augment.hue: must be in [0, 0.5], got 0.7"}},
		{"strength", func(c *Config) { c.Augment.Contrast = -1 }, []string{"data.augment.contrast: must be >= 0, got -1"}},
		{"blur_sigma", func(c *Config) { c.Augment.BlurSigma = []float64{0, 2} }, []string{"data.augment.blur_sigma: values must be in (0, +Inf]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			errs := c.Validate("data")
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
	// Without a prefix the keys stand alone.
	c := DefaultConfig()
	c.Workers = 0
	if errs := c.Validate(""); len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "workers: ") {
		t.Errorf("Validate(\"\") = %v", errs)
	}
}

// yamlKeys lists the dotted YAML keys of a struct type, checking that the yaml
// and mapstructure tags agree and are snake_case.
func yamlKeys(t *testing.T, typ reflect.Type, prefix string) []string {
	t.Helper()
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var keys []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		y, m := f.Tag.Get("yaml"), f.Tag.Get("mapstructure")
		if y == "-" && m == "-" {
			continue // not a config key: set by the stage (Restoration)
		}
		if y == "" || y != m || !snake.MatchString(y) {
			t.Errorf("field %s: yaml tag %q and mapstructure tag %q must be equal snake_case", f.Name, y, m)
		}
		k := prefix + y
		keys = append(keys, k)
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, yamlKeys(t, f.Type, k+".")...)
		}
	}
	return keys
}

// TestFieldDocs checks that FieldDocs documents exactly the YAML keys of Config,
// and that each text is the field's one-line comment in config.go, so the two
// cannot drift apart.
func TestFieldDocs(t *testing.T) {
	docs := Config{}.FieldDocs()
	keys := yamlKeys(t, reflect.TypeOf(Config{}), "")
	if len(keys) != len(docs) {
		t.Errorf("%d YAML keys but %d FieldDocs entries", len(keys), len(docs))
	}
	for _, k := range keys {
		if strings.TrimSpace(docs[k]) == "" {
			t.Errorf("FieldDocs has no entry for %q", k)
		}
	}

	// Field comments from the source.
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	comments := map[string]map[string]string{} // struct type → yaml key → comment
	ast.Inspect(file, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok || !strings.HasSuffix(ts.Name.Name, "Config") {
			return true
		}
		m := map[string]string{}
		for _, f := range st.Fields.List {
			tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("yaml")
			if tag == "-" {
				continue
			}
			if f.Doc == nil || len(f.Doc.List) != 1 {
				t.Errorf("%s.%s: needs exactly one comment line", ts.Name.Name, f.Names[0].Name)
				continue
			}
			m[tag] = strings.TrimSpace(strings.TrimPrefix(f.Doc.List[0].Text, "//"))
		}
		comments[ts.Name.Name] = m
		return true
	})
	structOf := map[string]string{"": "Config", "synthetic.": "SyntheticConfig", "augment.": "AugmentConfig"}
	for _, k := range keys {
		prefix, leaf := "", k
		if i := strings.LastIndex(k, "."); i >= 0 {
			prefix, leaf = k[:i+1], k[i+1:]
		}
		c := comments[structOf[prefix]][leaf]
		if c != docs[k] {
			t.Errorf("key %q: field comment\n  %q\ndiffers from FieldDocs\n  %q", k, c, docs[k])
		}
	}
}
