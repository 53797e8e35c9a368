package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// EnvPrefix is the prefix of environment variables that override config keys:
// DIRA_RUN_SEED=3 sets run.seed, DIRA_DATA_WORKERS=4 sets data.workers. Keys
// inside the stages list are not reachable from the environment; use --set.
const EnvPrefix = "DIRA"

// Load reads the YAML file at path on top of Default(), then applies DIRA_*
// environment variables, then each override "key=value" (YAML path syntax,
// e.g. "stages[1].optimizer.lr=0.01"; the value is parsed as YAML). Unknown
// keys, in the file or in an override, are errors: a typo must not be ignored.
// Load does not validate; call Config.Validate.
func Load(path string, overrides []string) (Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return load(path, src, overrides)
}

func load(path string, src []byte, overrides []string) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	var problems []error
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode && !(root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
			return Config{}, fmt.Errorf("config %s: line %d: the top level must be a mapping of keys", path, root.Line)
		}
		problems = append(problems, unknownKeys(path, root, reflect.TypeFor[Config](), "")...)
	}

	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// Register every scalar key so AutomaticEnv can see it (viper only looks
	// up environment variables for keys it knows).
	for _, k := range leafKeys(reflect.TypeFor[Config](), "") {
		v.SetDefault(k, nil)
	}
	if err := v.ReadConfig(bytes.NewReader(src)); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	raw := v.AllSettings()
	dropNils(raw)

	for _, o := range overrides {
		if err := applyOverride(raw, o); err != nil {
			problems = append(problems, fmt.Errorf("--set %s: %w", o, err))
		}
	}
	if len(problems) > 0 {
		return Config{}, errors.Join(problems...)
	}

	cfg := Default()
	if stages, ok := raw["stages"].([]any); ok {
		cfg.Stages = make([]StageConfig, len(stages))
		for i, s := range stages {
			m, ok := s.(map[string]any)
			if !ok {
				return Config{}, fmt.Errorf("config %s: stages[%d]: must be a mapping with a name, got %v", path, i, s)
			}
			name, _ := m["name"].(string)
			cfg.Stages[i] = DefaultStage(name)
		}
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           &cfg,
		WeaklyTypedInput: true, // environment variables arrive as strings
		ErrorUnused:      true,
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
	})
	if err != nil {
		return Config{}, err
	}
	if err := dec.Decode(raw); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// unknownKeys walks a YAML mapping against the struct type t (keys are the
// mapstructure tags) and reports each key t does not have, with its line.
func unknownKeys(file string, n *yaml.Node, t reflect.Type, prefix string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if tag := tagName(f); tag != "" {
				fields[tag] = f.Type
			}
		}
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := joinPath(prefix, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown key (%s line %d)%s", p, file, k.Line, suggest(k.Value, fields)))
				continue
			}
			errs = append(errs, unknownKeys(file, val, ft, p)...)
		}
		return errs
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		var errs []error
		for i, el := range n.Content {
			errs = append(errs, unknownKeys(file, el, t.Elem(), fmt.Sprintf("%s[%d]", prefix, i))...)
		}
		return errs
	}
	return nil
}

// suggest names the closest known key when one is a likely typo.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for f := range fields {
		if d := editDistance(key, f); d < bestD {
			best, bestD = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func tagName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	return tag
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// leafKeys lists the dotted paths of t's scalar (and scalar-slice) fields,
// not descending into slices of structs.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		p := joinPath(prefix, tagName(f))
		switch {
		case f.Type.Kind() == reflect.Struct:
			keys = append(keys, leafKeys(f.Type, p)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
		default:
			keys = append(keys, p)
		}
	}
	return keys
}

// dropNils removes the nil placeholders registered for AutomaticEnv so they
// do not overwrite defaults during decoding.
func dropNils(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNils(x)
			if len(x) == 0 {
				delete(m, k)
			}
		}
	}
}

// applyOverride sets raw[path] = value for "path=value", creating maps on the
// way. Paths use the YAML path syntax of error messages: a.b[2].c.
func applyOverride(raw map[string]any, o string) error {
	key, val, ok := strings.Cut(o, "=")
	if !ok || key == "" {
		return errors.New("must be key=value")
	}
	var value any
	if err := yaml.Unmarshal([]byte(val), &value); err != nil {
		return fmt.Errorf("value %q: %w", val, err)
	}
	parts, err := splitPath(key)
	if err != nil {
		return err
	}
	if err := checkPath(reflect.TypeFor[Config](), parts, ""); err != nil {
		return err
	}
	var cur any = raw
	for i, part := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			name, ok := part.(string)
			if !ok {
				return fmt.Errorf("%s: not a list", key)
			}
			if last {
				c[name] = value
				return nil
			}
			next, ok := c[name]
			if !ok || next == nil {
				if _, isIndex := parts[i+1].(int); isIndex {
					return fmt.Errorf("%s: the list has no element %d", key, parts[i+1])
				}
				next = map[string]any{}
				c[name] = next
			}
			cur = next
		case []any:
			idx, ok := part.(int)
			if !ok || idx < 0 || idx >= len(c) {
				return fmt.Errorf("%s: the list has %d elements", key, len(c))
			}
			if last {
				c[idx] = value
				return nil
			}
			cur = c[idx]
		default:
			return fmt.Errorf("%s: cannot set below a scalar", key)
		}
	}
	return nil
}

// splitPath turns "stages[1].optimizer.lr" into ["stages", 1, "optimizer", "lr"].
func splitPath(key string) ([]any, error) {
	var parts []any
	for _, seg := range strings.Split(key, ".") {
		name, rest, _ := strings.Cut(seg, "[")
		if name == "" {
			return nil, fmt.Errorf("bad key %q", key)
		}
		parts = append(parts, name)
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			n, err := strconv.Atoi(num)
			if !ok || err != nil {
				return nil, fmt.Errorf("bad index in key %q", key)
			}
			parts = append(parts, n)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return parts, nil
}

// checkPath reports an unknown key in an override path.
func checkPath(t reflect.Type, parts []any, done string) error {
	for _, part := range parts {
		switch p := part.(type) {
		case int:
			if t.Kind() != reflect.Slice {
				return fmt.Errorf("%s: not a list", done)
			}
			t = t.Elem()
			done = fmt.Sprintf("%s[%d]", done, p)
		case string:
			if t.Kind() != reflect.Struct {
				return fmt.Errorf("%s: unknown key", joinPath(done, p))
			}
			found := false
			for i := 0; i < t.NumField(); i++ {
				if tagName(t.Field(i)) == p {
					t, found = t.Field(i).Type, true
					break
				}
			}
			if !found {
				return fmt.Errorf("%s: unknown key", joinPath(done, p))
			}
			done = joinPath(done, p)
		}
	}
	return nil
}

// Parse is Load for a config already in memory (a checkpoint's embedded
// config); name is used in error messages.
func Parse(name string, src []byte, overrides []string) (Config, error) {
	return load(name, src, overrides)
}
