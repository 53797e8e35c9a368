package statedict

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// net is a Target in Go memory.
type net struct {
	names  []string
	shapes map[string][]int64
	got    map[string]Tensor
}

func (n *net) Names() []string { return n.names }
func (n *net) ShapeOf(name string) ([]int64, bool) {
	s, ok := n.shapes[name]
	return s, ok
}
func (n *net) Assign(name string, t Tensor) error { n.got[name] = t; return nil }

func newNet() *net {
	return &net{
		names:  []string{"w", "b", "count"},
		shapes: map[string][]int64{"w": {2, 2}, "b": {2}, "count": {}},
		got:    map[string]Tensor{},
	}
}

func TestLoad(t *testing.T) {
	good := StateDict{
		{Name: "w", Shape: []int64{2, 2}, F32: []float32{1, 2, 3, 4}},
		{Name: "b", Shape: []int64{2}, F32: []float32{5, 6}},
		{Name: "count", Shape: []int64{1}, DType: Int64, I64: []int64{7}}, // [1] fits a 0-d entry
	}
	n := newNet()
	loaded, err := Load(n, Identity(good), nil)
	if err != nil || len(loaded) != 3 || n.got["count"].I64[0] != 7 {
		t.Fatalf("good state dict: loaded %v, err %v", loaded, err)
	}

	bad := StateDict{
		{Name: "w", Shape: []int64{4}, F32: []float32{1, 2, 3, 4}},
		{Name: "extra", Shape: []int64{1}, F32: []float32{0}},
		{Name: "b", Shape: []int64{2}, F32: []float32{5}},
	}
	n = newNet()
	_, err = Load(n, Identity(bad), nil)
	if !errors.Is(err, ErrDoesNotFit) {
		t.Fatalf("bad state dict: %v, want ErrDoesNotFit", err)
	}
	for _, want := range []string{"key w: shape [4], the network's w is [2 2]", "unexpected key extra", "b: shape [2] needs 2 values, has 1", "missing key count"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if len(n.got) != 0 {
		t.Errorf("a failed load assigned %d entries", len(n.got))
	}

	twice := []Assignment{{To: "w", T: good[0]}, {To: "w", T: good[0]}}
	if _, err := Load(newNet(), twice, func(n string) bool { return n == "w" }); err == nil || !strings.Contains(err.Error(), "both go to w") {
		t.Errorf("one target twice: %v", err)
	}
	if _, err := Load(newNet(), Identity(good[:1]), func(n string) bool { return n == "w" }); err != nil {
		t.Errorf("only w required: %v", err)
	}
}

func TestRenameAndPrefixed(t *testing.T) {
	sd := StateDict{{Name: "a.x"}, {Name: "a.y"}, {Name: "b.x"}}
	if got := sd.Prefixed("a.").Names(); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("Prefixed = %v", got)
	}
	r, err := sd.Rename(func(n string) (string, bool) { return strings.ToUpper(n), n != "a.y" })
	if err != nil || !slices.Equal(r.Names(), []string{"A.X", "B.X"}) {
		t.Errorf("Rename = %v, %v", r.Names(), err)
	}
	if _, err := sd.Rename(func(n string) (string, bool) { return n[2:], true }); err == nil || !strings.Contains(err.Error(), `"a.x" and "b.x" both become "x"`) {
		t.Errorf("a collision: %v", err)
	}
	if sd[0].Name != "a.x" {
		t.Errorf("Rename changed its input")
	}
}
