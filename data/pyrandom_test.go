package data

import (
	"encoding/json"
	"os/exec"
	"slices"
	"testing"
)

// pythonJSON runs a Python snippet with Debian's /usr/bin/python3 and decodes
// the JSON it prints.
func pythonJSON(t *testing.T, code string, out any) {
	t.Helper()
	b, err := exec.Command("/usr/bin/python3", "-c", code).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("python: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("python: %v", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("python output: %v", err)
	}
}

// TestPyRandomMatchesCPython: the raw stream, getrandbits of several widths
// and shuffle equal CPython's for small and 64-bit seeds.
func TestPyRandomMatchesCPython(t *testing.T) {
	seeds := []uint64{0, 1, 99, 4294967295, 4294967296, 1<<63 + 12345}
	var want []struct {
		Bits    []uint64 `json:"bits"`
		Shuffle []int    `json:"shuffle"`
	}
	pythonJSON(t, `
import json, random
out = []
for seed in [0, 1, 99, 4294967295, 4294967296, (1 << 63) + 12345]:
    r = random.Random(seed)
    bits = [r.getrandbits(k) for k in [32, 1, 7, 31, 33, 64] * 200]
    x = list(range(1000))
    r.shuffle(x)
    out.append({"bits": bits, "shuffle": x})
print(json.dumps(out))`, &want)
	for si, seed := range seeds {
		r := NewPyRandom(seed)
		var bits []uint64
		for range 200 {
			for _, k := range []int{32, 1, 7, 31, 33, 64} {
				bits = append(bits, r.GetRandBits(k))
			}
		}
		if !slices.Equal(bits, want[si].Bits) {
			t.Fatalf("seed %d: getrandbits differ from CPython", seed)
		}
		x := make([]int, 1000)
		for i := range x {
			x[i] = i
		}
		r.Shuffle(len(x), func(i, j int) { x[i], x[j] = x[j], x[i] })
		if !slices.Equal(x, want[si].Shuffle) {
			t.Fatalf("seed %d: shuffle differs from CPython", seed)
		}
	}
}

// TestLabelSubsetMatchesOfficial runs the official rule (numpy index array,
// random.Random(99).shuffle, int(n * p / 100.0)) in Python on list sizes
// including the Shenzhen training list (463 lines) and ChestX-ray14's (75312).
func TestLabelSubsetMatchesOfficial(t *testing.T) {
	type tc struct {
		N       int     `json:"n"`
		Percent float64 `json:"percent"`
		Seed    uint64  `json:"seed"`
	}
	cases := []tc{{463, 1, 99}, {463, 10, 99}, {463, 25, 99}, {463, 50, 99}, {463, 99, 99}, {75312, 1, 99}, {75312, 5, 99}, {100, 12.5, 99}, {7, 50, 3}, {1, 50, 99}}
	in, _ := json.Marshal(cases)
	var want [][]int
	pythonJSON(t, `
import json, random
import numpy as np
out = []
for c in json.loads('`+string(in)+`'):
    indexes = np.arange(c["n"])
    random.Random(c["seed"]).shuffle(indexes)
    num_data = int(indexes.shape[0] * c["percent"] / 100.0)
    out.append([int(i) for i in indexes[:num_data]])
print(json.dumps(out))`, &want)
	for i, c := range cases {
		got, err := LabelSubset(c.N, c.Percent, c.Seed)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want[i]) {
			t.Errorf("n %d, %v%%, seed %d: subset differs from the official one (%d vs %d indices)", c.N, c.Percent, c.Seed, len(got), len(want[i]))
		}
	}
	all, _ := LabelSubset(5, 100, 99)
	if !slices.Equal(all, []int{0, 1, 2, 3, 4}) {
		t.Errorf("100%% subset = %v, want every index in order", all)
	}
	if _, err := LabelSubset(5, 0, 99); err == nil {
		t.Error("0% accepted")
	}
}
