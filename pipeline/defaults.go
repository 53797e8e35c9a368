package pipeline

import (
	"bytes"
	"fmt"
	"reflect"

	"gopkg.in/yaml.v3"
)

// fieldDocser is implemented by config types that keep their key docs in a
// map rather than in `doc` struct tags (package data does).
type fieldDocser interface{ FieldDocs() map[string]string }

// DefaultsYAML renders the complete default configuration as YAML with a
// one-line comment per key (meaning and unit). The stages list shows one
// default entry of each kind, with that kind's keys only.
func DefaultsYAML() ([]byte, error) {
	cfg := Default()
	for _, k := range stageKinds {
		cfg.Stages = append(cfg.Stages, k.defaults())
	}
	var n yaml.Node
	if err := n.Encode(cfg); err != nil {
		return nil, err
	}
	annotate(&n, reflect.TypeFor[Config](), nil, "")
	// Each stages entry is annotated with its own kind's type.
	root := &n
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "stages" {
			continue
		}
		for j, el := range root.Content[i+1].Content {
			st := cfg.Stages[j]
			annotate(el, reflect.TypeOf(st).Elem(), nil, "")
			el.Content[0].LineComment = "kind: " + kindDoc(st.Kind())
		}
	}
	var buf bytes.Buffer
	buf.WriteString("# dira configuration: every key with its default.\n")
	buf.WriteString("# stages lists one entry of each kind, with the keys of that kind; a run lists the\n")
	buf.WriteString("# ones it wants, in order.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// annotate sets each key's line comment from the `doc` tag of its field, or
// from the FieldDocs map of the nearest type that has one.
func annotate(n *yaml.Node, t reflect.Type, docs map[string]string, rel string) {
	if fd, ok := reflect.New(t).Elem().Interface().(fieldDocser); ok {
		docs, rel = fd.FieldDocs(), ""
	}
	switch {
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Interface:
		for _, el := range n.Content {
			annotate(el, t.Elem(), docs, rel)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		flowShortLists(n)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			for _, f := range fields(t) {
				if tagName(f) != k.Value {
					continue
				}
				r := joinPath(rel, k.Value)
				doc := f.Tag.Get("doc")
				if d, ok := docs[r]; ok && doc == "" {
					doc = d
				}
				if doc != "" {
					if v.Kind == yaml.ScalarNode {
						k.LineComment = doc
					} else if v.Style == yaml.FlowStyle {
						v.LineComment = doc // yaml.v3 drops a key's comment before a flow list
					} else {
						k.HeadComment = doc
					}
				}
				annotate(v, f.Type, docs, r)
			}
		}
	}
}

// flowShortLists prints scalar lists inline ([256, 128, ...]) so each key stays
// on one line with its comment.
func flowShortLists(n *yaml.Node) {
	for i := 1; i < len(n.Content); i += 2 {
		v := n.Content[i]
		if v.Kind == yaml.SequenceNode {
			scalar := true
			for _, el := range v.Content {
				scalar = scalar && el.Kind == yaml.ScalarNode
			}
			if scalar {
				v.Style = yaml.FlowStyle
			}
		}
	}
}

// YAML renders c as YAML (the run folder's config.yaml).
func (c Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return buf.Bytes(), nil
}

// fields lists a struct's keyed fields, descending into embedded structs that
// are inlined (squashed) into their parent's keys.
func fields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, fields(f.Type)...)
			continue
		}
		if tagName(f) != "" && tagName(f) != "-" {
			out = append(out, f)
		}
	}
	return out
}
