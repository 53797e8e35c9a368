package torchsave

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	fixturesOnce sync.Once
	fixturesDir  string
	fixturesErr  error
)

// fixtures runs testdata/gen_fixtures.py (PyTorch writes the files) once.
func fixtures(t *testing.T) string {
	t.Helper()
	fixturesOnce.Do(func() {
		fixturesDir, fixturesErr = os.MkdirTemp("", "dira-torchsave-")
		if fixturesErr != nil {
			return
		}
		out, err := exec.Command("/usr/bin/python3", "testdata/gen_fixtures.py", fixturesDir).CombinedOutput()
		if err != nil {
			fixturesErr = errors.New("gen_fixtures.py: " + err.Error() + "\n" + string(out))
		}
	})
	if fixturesErr != nil {
		t.Fatal(fixturesErr)
	}
	return fixturesDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixturesDir != "" {
		os.RemoveAll(fixturesDir)
	}
	os.Exit(code)
}

func open(t *testing.T, path string) *File {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	st, _ := fh.Stat()
	f, err := Open(fh, st.Size(), Limits{})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

type want struct {
	name, dtype string
	shape       []int64
	values      []float64
}

func readExpected(t *testing.T, path string) []want {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []want
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		w := want{name: f[0], dtype: f[1], shape: []int64{}}
		if f[2] != "-" {
			for _, d := range strings.Split(f[2], ",") {
				n, _ := strconv.ParseInt(d, 10, 64)
				w.shape = append(w.shape, n)
			}
		}
		for _, s := range f[3:] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("expected.txt: %q", s)
			}
			w.values = append(w.values, v)
		}
		out = append(out, w)
	}
	return out
}

// TestReadsWhatTorchWrote: the zip, deflated-zip and legacy files PyTorch
// writes read back with PyTorch's keys in order, shapes and values (exact:
// every conversion to float32 or int64 is exact or rounds as torch does).
func TestReadsWhatTorchWrote(t *testing.T) {
	dir := fixtures(t)
	exp := readExpected(t, filepath.Join(dir, "expected.txt"))
	for _, name := range []string{"zip.pth", "deflated.pth", "legacy.pth"} {
		t.Run(name, func(t *testing.T) {
			f := open(t, filepath.Join(dir, name))
			if f.Legacy != (name == "legacy.pth") {
				t.Errorf("Legacy %v", f.Legacy)
			}
			root, ok := f.Root.(*Dict)
			if !ok {
				t.Fatalf("root is a %s", typeName(f.Root))
			}
			if !slices.Equal(root.Keys, []any{"epoch", "arch", "state_dict", "optimizer", "best_loss"}) {
				t.Errorf("keys %v", root.Keys)
			}
			if v, _ := root.Get("epoch"); v != int64(3) {
				t.Errorf("epoch %v", v)
			}
			if v, _ := root.Get("best_loss"); v != 1.25 {
				t.Errorf("best_loss %v", v)
			}
			v, _ := root.Get("state_dict")
			sd, ok := v.(*Dict)
			if !ok || !sd.Ordered {
				t.Fatalf("state_dict is a %s", typeName(v))
			}
			if len(sd.Keys) != len(exp) {
				t.Fatalf("%d entries, want %d", len(sd.Keys), len(exp))
			}
			for i, w := range exp {
				if sd.Keys[i] != w.name {
					t.Fatalf("entry %d is %v, want %s", i, sd.Keys[i], w.name)
				}
				ten, ok := sd.Values[i].(*Tensor)
				if !ok {
					t.Fatalf("%s is a %s", w.name, typeName(sd.Values[i]))
				}
				if !slices.Equal(ten.Shape, w.shape) {
					t.Errorf("%s: shape %v, want %v", w.name, ten.Shape, w.shape)
				}
				var got []float64
				if ten.Storage.DType.IsFloat() {
					vs, err := f.Float32s(ten)
					if err != nil {
						t.Fatalf("%s: %v", w.name, err)
					}
					for j, x := range vs {
						got = append(got, float64(x))
						if x != float32(w.values[j]) && !(math.IsNaN(float64(x)) && math.IsNaN(w.values[j])) {
							t.Errorf("%s[%d] = %v, want %v", w.name, j, x, float32(w.values[j]))
						}
					}
				} else {
					vs, err := f.Int64s(ten)
					if err != nil {
						t.Fatalf("%s: %v", w.name, err)
					}
					for j, x := range vs {
						got = append(got, float64(x))
						if float64(x) != w.values[j] {
							t.Errorf("%s[%d] = %v, want %v", w.name, j, x, w.values[j])
						}
					}
				}
				if len(got) != len(w.values) {
					t.Errorf("%s: %d values, want %d", w.name, len(got), len(w.values))
				}
			}
		})
	}
}

// TestTruncatedFilesSayTruncated: a torch.save file cut anywhere is refused
// with an error that says truncated, in both layouts.
func TestTruncatedFilesSayTruncated(t *testing.T) {
	dir := fixtures(t)
	for _, name := range []string{"zip.pth", "deflated.pth", "legacy.pth"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, cut := range []int{len(b) - 1, len(b) * 3 / 4, len(b) / 2, 100, 10} {
			f, err := Open(bytes.NewReader(b[:cut]), int64(cut), Limits{})
			if err == nil {
				// The legacy layout can lose its last storage bytes and
				// still parse; reading the values must then fail.
				err = readAll(f)
			}
			if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "truncated") {
				t.Errorf("%s cut at %d of %d: %v, want truncated", name, cut, len(b), err)
			}
		}
	}
}

// readAll reads every tensor reachable through dicts.
func readAll(f *File) error {
	var walk func(v any) error
	walk = func(v any) error {
		switch c := v.(type) {
		case *Dict:
			for _, x := range c.Values {
				if err := walk(x); err != nil {
					return err
				}
			}
		case *Tensor:
			var err error
			if c.Storage.DType.IsFloat() {
				_, err = f.Float32s(c)
			} else {
				_, err = f.Int64s(c)
			}
			return err
		}
		return nil
	}
	return walk(f.Root)
}

// TestRefusesHostileSizes: declared sizes the file cannot back are refused
// before anything is allocated, naming the tensor by its key.
func TestRefusesHostileSizes(t *testing.T) {
	one := map[string][]byte{"0": f32bytes(1)}
	for _, tc := range []struct {
		name string
		file []byte
		lim  Limits
		want string
	}{
		{"storage_1e10", zipFile(t, stateDict([]view{{"w", "0", "FloatStorage", 1e10, 0, []int64{1}, []int64{1}}}), 0, one), Limits{},
			`tensor ["w"]: storage "0" declares 10000000000 Float elements (40000000000 bytes), more than the 268435456 bytes a storage may have`},
		{"storage_record_short", zipFile(t, stateDict([]view{{"w", "0", "FloatStorage", 1000, 0, []int64{1000}, []int64{1}}}), 0, one), Limits{},
			`tensor ["w"]: storage "0" declares 1000 Float elements (4000 bytes), its record holds 4 bytes: truncated`},
		{"stride0", zipFile(t, stateDict([]view{{"w", "0", "FloatStorage", 1, 0, []int64{100000, 100000}, []int64{0, 0}}}), 0, one), Limits{},
			`tensor ["w"]: shape [100000 100000] is 10000000000 values (40000000000 bytes as read), more than the 268435456`},
		{"expanded", zipFile(t, stateDict([]view{{"w", "0", "FloatStorage", 1, 0, []int64{100, 100}, []int64{0, 0}}}), 0, one), Limits{},
			`tensor ["w"]: view (size [100 100], stride [0 0]) has 10000 elements over a storage of 1: expanded views are not read`},
		{"past_storage", zipFile(t, stateDict([]view{{"w", "0", "FloatStorage", 1, 1, []int64{1}, []int64{1}}}), 0, one), Limits{},
			`runs past its storage of 1 elements`},
		{"overflow", zipFile(t, stateDict([]view{{"w", "0", "FloatStorage", 1, 0, []int64{1 << 40, 1 << 40}, []int64{1, 1}}}), 0, one), Limits{},
			`overflows`},
		{"no_record", zipFile(t, stateDict([]view{{"w", "7", "FloatStorage", 1, 0, []int64{1}, []int64{1}}}), 0, one), Limits{},
			`no record archive/data/7`},
		{"small_cap", zipFile(t, stateDict([]view{{"w", "0", "FloatStorage", 1, 0, []int64{1}, []int64{1}}}), 0, one), Limits{MaxTensorBytes: 2},
			`more than the 2 bytes a storage may have`},
		{"pickle_cap", zipFile(t, stateDict([]view{{"w", "0", "FloatStorage", 1, 0, []int64{1}, []int64{1}}}), 0, one), Limits{MaxPickleBytes: 100},
			`at most 100 are read`},
		{"huge_string", zipFile(t, []byte("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\x00\x00"), 0, nil), Limits{}, "truncated: needs"},
		{"huge_frame", zipFile(t, []byte("\x80\x04\x95\xff\xff\xff\xff\xff\x00\x00\x00N."), 0, nil), Limits{}, "truncated: frame of"},
		{"no_stop", zipFile(t, []byte("\x80\x02N"), 0, nil), Limits{}, "truncated at byte 3"},
		{"torchscript", func() []byte {
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			for _, n := range []string{"archive/data.pkl", "archive/constants.pkl"} {
				w, _ := zw.Create(n)
				w.Write([]byte("\x80\x02N."))
			}
			zw.Close()
			return b.Bytes()
		}(), Limits{}, "a TorchScript archive"},
		{"tar", append(make([]byte, 257), "ustar\x0000"...), Limits{}, "a tar archive"},
		{"not_torch_pickle", []byte("\x80\x02}q\x00."), Limits{}, "not a torch.save file"},
		{"empty", nil, Limits{}, "empty file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Open(bytes.NewReader(tc.file), int64(len(tc.file)), tc.lim)
			if err == nil {
				err = readAll(f)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestTotalBudget: values are read within MaxTotalBytes across tensors.
func TestTotalBudget(t *testing.T) {
	b := zipFile(t, stateDict([]view{
		{"a", "0", "FloatStorage", 4, 0, []int64{4}, []int64{1}},
		{"b", "0", "FloatStorage", 4, 0, []int64{2, 2}, []int64{1, 2}},
	}), 8, map[string][]byte{"0": f32bytes(1, 2, 3, 4)})
	f, err := Open(bytes.NewReader(b), int64(len(b)), Limits{MaxTotalBytes: 20})
	if err != nil {
		t.Fatal(err)
	}
	sd := f.Root.(*Dict)
	a, err := f.Float32s(sd.Values[0].(*Tensor))
	if err != nil || !slices.Equal(a, []float32{1, 2, 3, 4}) {
		t.Fatalf("a = %v, %v", a, err)
	}
	if _, err := f.Float32s(sd.Values[1].(*Tensor)); err == nil || !strings.Contains(err.Error(), "more than the 20 bytes") {
		t.Fatalf("b: %v, want the budget error", err)
	}
	f, _ = Open(bytes.NewReader(b), int64(len(b)), Limits{})
	bt, err := f.Float32s(f.Root.(*Dict).Values[1].(*Tensor))
	if err != nil || !slices.Equal(bt, []float32{1, 3, 2, 4}) {
		t.Fatalf("transposed view = %v, %v", bt, err)
	}
}

// TestExecutesNothing: classes the reader does not know are recorded, not
// called, wherever they appear.
func TestExecutesNothing(t *testing.T) {
	var p pk
	p.op(0x80, 2).op('}')
	p.str("evil").global("os", "system").op('(').str("touch /tmp/pwned").op('t', 'R', 's')
	p.op('.')
	m := &machine{b: p.Bytes()}
	v, _, err := m.run()
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*Dict)
	o, ok := d.Values[0].(*Object)
	if !ok || o.Class != (Global{"os", "system"}) || o.Args[0] != "touch /tmp/pwned" {
		t.Fatalf("got %#v", d.Values[0])
	}
}

// TestPickleOpcodes: the machine reads what Python's pickle writes at every
// protocol, checked against Python itself.
func TestPickleOpcodes(t *testing.T) {
	script := `
import pickle, sys, collections
obj = {"i": [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31, 2**63, -2**70], "f": [1.5, -0.0],
       "s": ["", "abc", "é€", "x" * 300], "b": [b"", b"\x00\xff" * 200], "t": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
       "n": [None, True, False], "d": {1: "a", (1, "x"): "b"}, "set": {3}, "fs": frozenset([4])}
obj["self"] = obj["s"]
for proto in range(0, 6):
    sys.stdout.buffer.write(pickle.dumps(obj, protocol=proto).hex().encode() + b"\n")
`
	out, err := exec.Command("/usr/bin/python3", "-c", script).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	for proto, line := range strings.Fields(string(out)) {
		b := make([]byte, len(line)/2)
		for i := range b {
			v, _ := strconv.ParseUint(line[2*i:2*i+2], 16, 8)
			b[i] = byte(v)
		}
		m := &machine{b: b}
		v, n, err := m.run()
		if err != nil {
			t.Fatalf("protocol %d: %v", proto, err)
		}
		if n != len(b) {
			t.Errorf("protocol %d: consumed %d of %d bytes", proto, n, len(b))
		}
		d := v.(*Dict)
		get := func(k string) []any {
			x, _ := d.Get(k)
			switch c := x.(type) {
			case *List:
				return c.Items
			}
			t.Fatalf("protocol %d: %s is a %s", proto, k, typeName(x))
			return nil
		}
		ints := get("i")
		if ints[0] != int64(0) || ints[3] != int64(255) || ints[7] != int64(-1<<31) || ints[8] != int64(1<<31) {
			t.Errorf("protocol %d: ints %v", proto, ints)
		}
		if s := typeName(ints[9]); s != "int" || ints[10].(interface{ String() string }).String() != "-1180591620717411303424" {
			t.Errorf("protocol %d: big ints %v %v", proto, ints[9], ints[10])
		}
		if fs := get("f"); fs[0] != 1.5 || !math.Signbit(fs[1].(float64)) {
			t.Errorf("protocol %d: floats %v", proto, fs)
		}
		if ss := get("s"); ss[2] != "é€" || len(ss[3].(string)) != 300 {
			t.Errorf("protocol %d: strings %q", proto, ss[:3])
		}
		if tu := get("t"); len(tu[4].(Tuple)) != 4 || tu[2].(Tuple)[1] != int64(2) {
			t.Errorf("protocol %d: tuples %v", proto, tu)
		}
		if nn := get("n"); nn[0] != nil || nn[1] != true || nn[2] != false {
			t.Errorf("protocol %d: constants %v", proto, nn)
		}
		self, _ := d.Get("self")
		s, _ := d.Get("s")
		if self != s {
			t.Errorf("protocol %d: the memo did not share the list", proto)
		}
	}
}

// FuzzOpen: no input makes Open or the value readers panic, hang or
// allocate beyond the limits.
func FuzzOpen(f *testing.F) {
	one := map[string][]byte{"0": f32bytes(1, 2, 3, 4)}
	f.Add(zipFile(f, stateDict([]view{{"w", "0", "FloatStorage", 4, 0, []int64{2, 2}, []int64{2, 1}}}), 0, one))
	f.Add(zipFile(f, stateDict([]view{{"w", "0", "FloatStorage", 4, 1, []int64{3}, []int64{1}}, {"v", "0", "FloatStorage", 4, 0, []int64{2, 2}, []int64{1, 2}}}), 8, one))
	// testdata/fuzz/FuzzOpen holds gen_fixtures.py's zip.pth and legacy.pth
	// (scripts/fuzzseed.py).
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Open(bytes.NewReader(b), int64(len(b)), Limits{MaxTensorBytes: 1 << 20, MaxTotalBytes: 8 << 20})
		if err != nil {
			return
		}
		readAll(file)
	})
}
