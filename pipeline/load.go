package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"

	"dira/data"
)

// EnvPrefix is the prefix of environment variables that override config keys:
// DIRA_RUN_SEED=3 sets run.seed, DIRA_DATA_WORKERS=4 sets data.workers. Keys
// inside the stages list are not reachable from the environment; use --set.
const EnvPrefix = "DIRA"

// Load reads the YAML file at path and resolves the config in layers, each
// over the one before: the built-in defaults (a stage's from its kind), the
// file, DIRA_* environment variables, then each override "key=value" (YAML
// path syntax, e.g. "stages[1].optimizer.lr=0.01"; the value is parsed as
// YAML). Unknown keys, in any layer, are errors naming the YAML path (and
// the file line); so is a key that differs from its default but has no
// effect (data.val_fraction with a list source, say). Load does not validate
// values; call Config.Validate.
func Load(path string, overrides []string) (Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return load(path, src, overrides, true)
}

// Parse is Load for a config already in memory (a checkpoint's embedded
// config); name is used in error messages. The environment is not read: a
// saved config is taken as it was saved.
func Parse(name string, src []byte, overrides []string) (Config, error) {
	return load(name, src, overrides, false)
}

// loader is one resolution of a config: the file's key lines and the keys a
// user set (file, environment or --set), for error messages.
type loader struct {
	file     string
	lines    map[string]int  // YAML path -> line in the file
	userSet  map[string]bool // YAML paths set by the file, the environment or --set
	problems []error
}

func (l *loader) where(path string) string {
	if line, ok := l.lines[path]; ok {
		return fmt.Sprintf(" (%s line %d)", l.file, line)
	}
	return ""
}

func load(name string, src []byte, overrides []string, env bool) (Config, error) {
	l := &loader{file: name, lines: map[string]int{}, userSet: map[string]bool{}}

	// 1. The file, parsed once into a node tree: its lines name the keys in
	// errors, and its values are viper's config layer.
	fileMap, err := l.parseFile(src)
	if err != nil {
		return Config{}, err
	}
	rawStages, _ := fileMap["stages"].([]any)
	if s, ok := fileMap["stages"]; ok && s != nil && rawStages == nil {
		return Config{}, fmt.Errorf("config %s: stages%s: must be a list of stages", name, l.where("stages"))
	}
	delete(fileMap, "stages")
	l.checkKeys(fileMap, reflect.TypeFor[Config](), "", func(p string) string { return "unknown key" + l.where(p) })

	// 2. Viper holds the layers of everything outside the stages list:
	// defaults, the file, the environment (AutomaticEnv, for the keys it
	// knows: every default is registered) and --set overrides (Set).
	v := viper.New()
	for key, val := range leafValues(Default(), "") {
		v.SetDefault(key, val)
	}
	if env {
		v.SetEnvPrefix(EnvPrefix)
		v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
		v.AutomaticEnv()
		l.checkEnvironment()
	}
	if err := v.MergeConfigMap(fileMap); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", name, err)
	}

	// 3. --set overrides. Viper cannot address list elements, so overrides
	// inside the stages list edit the raw list here, the one place that does.
	for _, o := range overrides {
		if err := l.override(v, &rawStages, o); err != nil {
			l.problems = append(l.problems, fmt.Errorf("--set %s: %w", o, err))
		}
	}
	for i, s := range rawStages {
		l.checkStage(s, i, l.where)
	}
	if len(l.problems) > 0 {
		return Config{}, errors.Join(l.problems...)
	}

	// 4. Exact decoding: unknown keys are errors (already reported above,
	// with lines; ErrorUnused is the backstop), and scalars are converted
	// only when the value is exactly representable (strictScalars).
	var cfg Config
	err = v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = strictScalars
		dc.WeaklyTypedInput = false
		dc.ErrorUnused = true
	})
	if err != nil {
		l.decodeProblems("", err)
	}
	cfg.Stages = make(Stages, 0, len(rawStages))
	for i, raw := range rawStages {
		if st := l.decodeStage(i, raw); st != nil {
			cfg.Stages = append(cfg.Stages, st)
		}
	}
	l.problems = append(l.problems, l.noEffect(cfg)...)
	if len(l.problems) > 0 {
		return Config{}, errors.Join(l.problems...)
	}
	return cfg, nil
}

// parseFile parses src as one YAML document whose top level is a mapping,
// records each key's line and returns the document as nested maps.
func (l *loader) parseFile(src []byte) (map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", l.file, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := next.Line
		if len(next.Content) > 0 {
			line = next.Content[0].Line
		}
		return nil, fmt.Errorf("config %s: line %d: a second YAML document (after ---); a config is one document", l.file, line)
	}
	out := map[string]any{}
	if len(doc.Content) == 0 {
		return out, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return out, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s: line %d: the top level must be a mapping of keys", l.file, root.Line)
	}
	l.recordLines(root, "")
	if err := root.Decode(&out); err != nil {
		return nil, fmt.Errorf("config %s: %w", l.file, err)
	}
	return out, nil
}

// recordLines fills l.lines and l.userSet from the node tree.
func (l *loader) recordLines(n *yaml.Node, prefix string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(prefix, n.Content[i].Value)
			l.lines[p] = n.Content[i].Line
			l.userSet[p] = true
			l.recordLines(n.Content[i+1], p)
		}
	case yaml.SequenceNode:
		for i, el := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			l.lines[p] = el.Line
			l.recordLines(el, p)
		}
	}
}

// checkKeys reports every key of m that t does not have, by YAML path.
func (l *loader) checkKeys(m map[string]any, t reflect.Type, prefix string, unknown func(path string) string) {
	byTag := map[string]reflect.StructField{}
	for _, f := range fields(t) {
		byTag[tagName(f)] = f
	}
	for _, k := range sortedKeys(m) {
		p := joinPath(prefix, k)
		f, ok := byTag[k]
		if !ok {
			l.problems = append(l.problems, fmt.Errorf("%s: %s%s", p, unknown(p), suggest(k, byTag)))
			continue
		}
		if sub, ok := m[k].(map[string]any); ok && f.Type.Kind() == reflect.Struct {
			l.checkKeys(sub, f.Type, p, unknown)
		}
	}
}

// checkStage checks one raw stages entry: a mapping with a known kind as
// name, holding only keys of that kind.
func (l *loader) checkStage(raw any, i int, where func(string) string) {
	p := fmt.Sprintf("stages[%d]", i)
	m, ok := raw.(map[string]any)
	if !ok {
		l.problems = append(l.problems, fmt.Errorf("%s: %w, got %v%s", p, errNoName, raw, where(p)))
		return
	}
	kind, _ := m["name"].(string)
	st, err := NewStage(kind)
	if err != nil {
		l.problems = append(l.problems, fmt.Errorf("%s.name: %w%s", p, err, where(p+".name")))
		return
	}
	rest := map[string]any{}
	for k, v := range m {
		if k != "name" {
			rest[k] = v
		}
	}
	l.checkKeys(rest, reflect.TypeOf(st).Elem(), p, func(path string) string {
		key := strings.TrimPrefix(path, p+".")
		if top, _, _ := strings.Cut(key, "."); otherKinds(kind, top) != "" {
			return fmt.Sprintf("not a key of %s stage (it belongs to %s)%s", article(kind), otherKinds(kind, top), where(path))
		}
		return "unknown key" + where(path)
	})
}

// otherKinds names the stage kinds other than kind that have key.
func otherKinds(kind, key string) string {
	var names []string
	for _, k := range stageKinds {
		if k.name == kind {
			continue
		}
		for _, f := range fields(reflect.TypeOf(k.defaults()).Elem()) {
			if tagName(f) == key {
				names = append(names, k.name)
			}
		}
	}
	return strings.Join(names, ", ")
}

func article(kind string) string {
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// checkEnvironment refuses DIRA_<SECTION>_* variables that name no key of
// that config section: a typo in a variable would otherwise be ignored.
// Other DIRA_* variables (DIRA_ORT_LIB, ...) are not config keys.
func (l *loader) checkEnvironment() {
	known := map[string]bool{}
	for key := range leafValues(Default(), "") {
		known[envName(key)] = true
	}
	sections := map[string]bool{}
	for _, f := range fields(reflect.TypeFor[Config]()) {
		if tagName(f) != "stages" {
			sections[envName(tagName(f))+"_"] = true
		}
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") {
			continue
		}
		for sec := range sections {
			if strings.HasPrefix(name, sec) {
				if known[name] {
					l.userSet[envKey(name)] = true
				} else {
					l.problems = append(l.problems, fmt.Errorf("environment %s: names no config key (see `dira config defaults`)", name))
				}
			}
		}
	}
}

func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func envKey(name string) string {
	for key := range leafValues(Default(), "") {
		if envName(key) == name {
			return key
		}
	}
	return ""
}

// override applies one --set key=value: inside the stages list to the raw
// list, elsewhere as viper's override layer.
func (l *loader) override(v *viper.Viper, stages *[]any, o string) error {
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
	l.userSet[key] = true
	if parts[0] != "stages" {
		if err := checkPath(reflect.TypeFor[Config](), parts, ""); err != nil {
			return err
		}
		if _, isStruct := value.(map[string]any); isStruct {
			return fmt.Errorf("%s: set one key at a time (--set %s.<key>=...)", key, key)
		}
		v.Set(key, value)
		return nil
	}
	if len(parts) == 1 {
		list, ok := value.([]any)
		if !ok && value != nil {
			return fmt.Errorf("stages: must be a list of stages, e.g. stages=[] or stages[0].epochs=2")
		}
		*stages = list
		return nil
	}
	idx, ok := parts[1].(int)
	if !ok || idx < 0 || idx >= len(*stages) {
		return fmt.Errorf("%s: the stages list has %d elements", key, len(*stages))
	}
	entry, ok := (*stages)[idx].(map[string]any)
	if !ok {
		return fmt.Errorf("stages[%d]: %w", idx, errNoName)
	}
	if len(parts) == 2 {
		return fmt.Errorf("%s: set a key of the stage, e.g. %s.epochs=2", key, key)
	}
	rest := parts[2:]
	if rest[0] == "name" {
		if len(rest) > 1 {
			return fmt.Errorf("%s: unknown key", key)
		}
		entry["name"] = value
		return nil
	}
	kind, _ := entry["name"].(string)
	st, err := NewStage(kind)
	if err != nil {
		return fmt.Errorf("stages[%d].name: %w", idx, err)
	}
	prefix := fmt.Sprintf("stages[%d]", idx)
	if err := checkPath(reflect.TypeOf(st).Elem(), rest, prefix); err != nil {
		if top, _ := rest[0].(string); otherKinds(kind, top) != "" {
			return fmt.Errorf("%s.%s: not a key of %s stage (it belongs to %s)", prefix, top, article(kind), otherKinds(kind, top))
		}
		return err
	}
	var cur any = entry
	for i, part := range rest {
		last := i == len(rest)-1
		switch c := cur.(type) {
		case map[string]any:
			name := part.(string)
			if last {
				c[name] = value
				return nil
			}
			next, ok := c[name]
			if !ok || next == nil {
				if _, isIndex := rest[i+1].(int); isIndex {
					return fmt.Errorf("%s: the list has no element %d", key, rest[i+1])
				}
				next = map[string]any{}
				c[name] = next
			}
			cur = next
		case []any:
			j := part.(int)
			if j < 0 || j >= len(c) {
				return fmt.Errorf("%s: the list has %d elements", key, len(c))
			}
			if last {
				c[j] = value
				return nil
			}
			cur = c[j]
		default:
			return fmt.Errorf("%s: cannot set below a scalar", key)
		}
	}
	return nil
}

// decodeStage decodes one stages entry into its kind's defaults.
func (l *loader) decodeStage(i int, raw any) StageSettings {
	m, _ := raw.(map[string]any)
	kind, _ := m["name"].(string)
	st, err := NewStage(kind)
	if err != nil {
		return nil // reported by checkStage
	}
	rest := map[string]any{}
	for k, v := range m {
		if k != "name" {
			rest[k] = v
		}
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:      st,
		DecodeHook:  strictScalars,
		ErrorUnused: true,
		Squash:      true,
	})
	if err != nil {
		panic(err) // a static mistake in the settings types
	}
	if err := dec.Decode(rest); err != nil {
		l.decodeProblems(fmt.Sprintf("stages[%d]", i), err)
		return nil
	}
	return st
}

// decodeProblems turns mapstructure's joined decode errors into one problem
// per key, named by YAML path.
func (l *loader) decodeProblems(prefix string, err error) {
	var walk func(error) bool
	walk = func(e error) bool {
		var de *mapstructure.DecodeError
		if errors.As(e, &de) && !isJoin(e) {
			p := joinPath(prefix, de.Name())
			inner := de.Unwrap()
			for {
				var nested *mapstructure.DecodeError
				if !errors.As(inner, &nested) {
					break
				}
				inner = nested.Unwrap()
			}
			l.problems = append(l.problems, fmt.Errorf("%s: %v%s", p, inner, l.where(p)))
			return true
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			found := false
			for _, sub := range j.Unwrap() {
				found = walk(sub) || found
			}
			return found
		}
		if u := errors.Unwrap(e); u != nil {
			return walk(u)
		}
		return false
	}
	if !walk(err) {
		where := prefix
		if where == "" {
			where = l.file
		}
		l.problems = append(l.problems, fmt.Errorf("%s: %w", where, err))
	}
}

func isJoin(e error) bool {
	_, ok := e.(interface{ Unwrap() []error })
	return ok
}

// strictScalars converts a config value to its field's type only when the
// value is exactly that: an integer key takes 3 or 3.0 but not 2.7 or 1e30,
// an unsigned one refuses -1, no number may be NaN or infinite, and strings
// (from the environment) are parsed with the same rules.
func strictScalars(from, to reflect.Type, data any) (any, error) {
	if s, ok := data.(string); ok && to.Kind() != reflect.String {
		switch to.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
				data = i
			} else if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
				data = f
			} else {
				return nil, fmt.Errorf("must be an integer, got %q", s)
			}
		case reflect.Float32, reflect.Float64:
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, fmt.Errorf("must be a number, got %q", s)
			}
			data = f
		case reflect.Bool:
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("must be true or false, got %q", s)
			}
			return b, nil
		case reflect.Slice:
			// A list from the environment: comma-separated.
			var out []any
			for _, part := range strings.Split(s, ",") {
				out = append(out, strings.TrimSpace(part))
			}
			return out, nil
		}
	}
	var f float64
	isNum := true
	switch n := data.(type) {
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case uint64:
		f = float64(n)
	case float64:
		f = n
	default:
		isNum = false
	}
	switch to.Kind() {
	case reflect.Float32, reflect.Float64:
		if isNum && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return nil, fmt.Errorf("must be a finite number, got %v", f)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !isNum {
			break
		}
		if f != math.Trunc(f) || math.IsNaN(f) {
			return nil, fmt.Errorf("must be an integer, got %v", data)
		}
		lim := math.Ldexp(1, to.Bits()-1)
		if f >= lim || f < -lim {
			return nil, fmt.Errorf("must be an integer of at most %d bits, got %v", to.Bits(), data)
		}
		if n, ok := data.(float64); ok {
			return int64(n), nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !isNum {
			break
		}
		if f != math.Trunc(f) || math.IsNaN(f) {
			return nil, fmt.Errorf("must be a non-negative integer, got %v", data)
		}
		if f < 0 {
			return nil, fmt.Errorf("must be >= 0, got %v", data)
		}
		if f >= math.Ldexp(1, to.Bits()) {
			return nil, fmt.Errorf("must be an integer of at most %d bits, got %v", to.Bits(), data)
		}
		switch n := data.(type) {
		case float64:
			return uint64(n), nil
		case int:
			return uint64(n), nil
		case int64:
			return uint64(n), nil
		}
	case reflect.String:
		if _, ok := data.(string); !ok && data != nil {
			if k := reflect.TypeOf(data).Kind(); k != reflect.Map && k != reflect.Slice {
				return nil, fmt.Errorf("must be a string, got %v", data)
			}
		}
	}
	return data, nil
}

// noEffect refuses keys that the user set to something other than their
// default where the rest of the config makes them do nothing: every key
// either takes effect or is refused.
func (l *loader) noEffect(c Config) []error {
	var errs []error
	def := Default()
	changed := func(path string, v, d any) bool { return l.userSet[path] && !sameValue(v, d) }
	unused := func(path, why string) {
		errs = append(errs, fmt.Errorf("%s: has no effect %s; remove it%s", path, why, l.where(path)))
	}
	dc, dd := c.Data, def.Data
	src := "with data.source " + dc.Source
	if dc.Source != "list" && dc.Source != "folder" && changed("data.root", dc.Root, dd.Root) {
		unused("data.root", src)
	}
	if dc.Source != "list" {
		if changed("data.train_list", dc.TrainList, dd.TrainList) {
			unused("data.train_list", src+" (used by source list)")
		}
		if changed("data.val_list", dc.ValList, dd.ValList) {
			unused("data.val_list", src+" (used by source list)")
		}
	}
	if dc.Source != "folder" {
		if changed("data.extensions", dc.Extensions, dd.Extensions) {
			unused("data.extensions", src+" (used by source folder)")
		}
		if changed("data.val_fraction", dc.ValFraction, dd.ValFraction) {
			unused("data.val_fraction", src+" (used by source folder)")
		}
	}
	if dc.BadImages != "skip" && changed("data.max_skipped_fraction", dc.MaxSkippedFraction, dd.MaxSkippedFraction) {
		unused("data.max_skipped_fraction", "with data.bad_images "+dc.BadImages+" (used by bad_images skip)")
	}
	if dc.Source != "synthetic" {
		s, ds := reflect.ValueOf(dc.Synthetic), reflect.ValueOf(dd.Synthetic)
		for i := 0; i < s.NumField(); i++ {
			p := "data.synthetic." + tagName(s.Type().Field(i))
			if changed(p, s.Field(i).Interface(), ds.Field(i).Interface()) {
				unused(p, src+" (used by source synthetic)")
			}
		}
	}
	for i, st := range c.Stages {
		if ex, ok := st.(*ExportStage); ok {
			p := fmt.Sprintf("stages[%d].", i)
			d, _ := NewStage(StageExport)
			dex := d.(*ExportStage)
			if ex.Precision == "fp32" && changed(p+"calibration", ex.Calibration, dex.Calibration) {
				unused(p+"calibration", "with precision fp32 (used by precision int8 and fp16)")
			}
			if ex.Precision != "int8" {
				if changed(p+"calibration_count", ex.CalibrationCount, dex.CalibrationCount) {
					unused(p+"calibration_count", "with precision "+ex.Precision+" (used by precision int8)")
				}
				if changed(p+"calibration_method", ex.CalibrationMethod, dex.CalibrationMethod) {
					unused(p+"calibration_method", "with precision "+ex.Precision+" (used by precision int8)")
				}
			}
			continue
		}
		if ft, ok := FineTuneOf(st); ok {
			d, _ := NewStage(st.Kind())
			dft, _ := FineTuneOf(d)
			errs = append(errs, l.labeledNoEffect(fmt.Sprintf("stages[%d].data", i), st.Kind(), ft.Data, dft.Data)...)
			continue
		}
		tr, ok := TrainingOf(st)
		if !ok {
			continue
		}
		p := fmt.Sprintf("stages[%d].optimizer.milestones", i)
		d, _ := NewStage(st.Kind())
		dtr, _ := TrainingOf(d)
		if tr.Optimizer.Schedule != "step" && changed(p, tr.Optimizer.Milestones, dtr.Optimizer.Milestones) {
			unused(p, fmt.Sprintf("with schedule %s (used by schedule step)", tr.Optimizer.Schedule))
		}
	}
	return errs
}

// labeledNoEffect refuses a fine-tuning stage's data keys that its task or
// source leaves inert: the other task's augmentation, the classification
// evaluation transform in a segmentation, the synthetic settings of a file
// source and the file settings of the synthetic one.
func (l *loader) labeledNoEffect(path, kind string, d, def data.LabeledConfig) []error {
	var errs []error
	v, dv := reflect.ValueOf(d), reflect.ValueOf(def)
	check := func(key, why string) {
		for _, f := range fields(v.Type()) {
			if tagName(f) != key {
				continue
			}
			a, b := v.FieldByIndex(f.Index), dv.FieldByIndex(f.Index)
			if f.Type.Kind() == reflect.Struct {
				for _, sf := range fields(f.Type) {
					p := path + "." + key + "." + tagName(sf)
					if l.userSet[p] && !sameValue(a.FieldByIndex(sf.Index).Interface(), b.FieldByIndex(sf.Index).Interface()) {
						errs = append(errs, fmt.Errorf("%s: has no effect %s; remove it%s", p, why, l.where(p)))
					}
				}
				continue
			}
			p := path + "." + key
			if l.userSet[p] && !sameValue(a.Interface(), b.Interface()) {
				errs = append(errs, fmt.Errorf("%s: has no effect %s; remove it%s", p, why, l.where(p)))
			}
		}
	}
	if kind == StageSegment {
		for _, k := range []string{"classify", "resize_size", "resize_shorter", "ten_crop", "classes", "class_names", "list_format"} {
			check(k, "in a segment stage (used by classification)")
		}
	} else {
		check("segment", "in a classify stage (used by segmentation)")
	}
	if d.Source == data.SourceSynthetic {
		for _, k := range []string{"root", "train", "val", "test", "list_format", "extensions"} {
			check(k, "with data.source synthetic (used by list and folder sources)")
		}
	} else {
		check("synthetic", "with data.source "+d.Source+" (used by source synthetic)")
	}
	return errs
}

// sameValue is reflect.DeepEqual with a nil and an empty slice taken as
// equal (a printed default [] reads back as an empty slice).
func sameValue(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() == reflect.Slice && vb.Kind() == reflect.Slice && va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// suggest names the closest known key when one is a likely typo.
func suggest(key string, known map[string]reflect.StructField) string {
	best, bestD := "", 3
	for _, f := range sortedKeys(known) {
		if d := editDistance(key, f); d < bestD {
			best, bestD = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
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
	if key == "" {
		return prefix
	}
	return prefix + "." + key
}

// leafValues flattens a config's scalar (and scalar-list) fields into dotted
// keys, leaving out the stages list: what viper takes as defaults.
func leafValues(c Config, prefix string) map[string]any {
	out := map[string]any{}
	var walk func(v reflect.Value, p string)
	walk = func(v reflect.Value, p string) {
		for _, f := range fields(v.Type()) {
			key := joinPath(p, tagName(f))
			fv := v.FieldByIndex(f.Index)
			switch {
			case key == "stages":
			case f.Type.Kind() == reflect.Struct:
				walk(fv, key)
			default:
				out[key] = fv.Interface()
			}
		}
	}
	walk(reflect.ValueOf(c), prefix)
	return out
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
			for _, f := range fields(t) {
				if tagName(f) == p {
					t, found = f.Type, true
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
