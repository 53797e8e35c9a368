package checkpoint

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"dira/internal/memtest"
	"dira/internal/npy"
	"dira/statedict"
)

// npyHeader is a version 1.0 .npy header for descr and shape (numpy's
// spelling, "7," for one dimension).
func npyHeader(descr, shape string) []byte {
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape)
	h += strings.Repeat(" ", (64-(10+len(h)+1)%64)%64) + "\n"
	return append([]byte{0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, byte(len(h)), byte(len(h) >> 8)}, h...)
}

type entry struct {
	name   string
	method uint16
	body   func(w io.Writer)
}

func bytesOf(b []byte) func(io.Writer) { return func(w io.Writer) { w.Write(b) } }

// craft writes a checkpoint archive of the given entries, after a valid
// meta.json unless the first entry is a meta.json.
func craft(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	meta := fmt.Sprintf(`{"format": %q, "stage": "warmup"}`, Format)
	if len(entries) == 0 || entries[0].name != "meta.json" {
		entries = append([]entry{{"meta.json", zip.Store, bytesOf([]byte(meta))}}, entries...)
	}
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			t.Fatal(err)
		}
		e.body(w)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tensorNPY(t testing.TB, a npy.Array) []byte {
	var b bytes.Buffer
	if err := npy.Write(&b, a); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// zeros writes n zero bytes.
func zeros(n int64) func(io.Writer) {
	return func(w io.Writer) {
		z := make([]byte, 1<<20)
		for ; n > 0; n -= int64(len(z)) {
			w.Write(z[:min(n, int64(len(z)))])
		}
	}
}

// bombEntry is tensors/model/w.npy: a header for n float32 values, then the
// zeros, deflated (1.1 GB deflates to about 1.4 MB).
func bombEntry(n int64) entry {
	return entry{"tensors/model/w.npy", zip.Deflate, func(w io.Writer) {
		w.Write(npyHeader("<f4", fmt.Sprintf("%d,", n)))
		zeros(4 * n)(w)
	}}
}

func readBytes(b []byte, lim Limits) (*File, error) {
	return ReadFrom(bytes.NewReader(b), int64(len(b)), "x.ckpt", lim)
}

// TestReadRefusesHostileSizes: every size a file declares is checked before
// it is trusted; the errors name the file and the entry.
func TestReadRefusesHostileSizes(t *testing.T) {
	good := tensorNPY(t, npy.Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}})
	huge := append(npyHeader("<f4", "100000, 100000"), make([]byte, 64)...)
	stored := craft(t, entry{"tensors/model/w.npy", zip.Store, bytesOf(good)})
	for _, tc := range []struct {
		name string
		file []byte
		lim  Limits
		want string
	}{
		{"huge_shape", craft(t, entry{"tensors/model/w.npy", zip.Store, bytesOf(huge)}), Limits{},
			"tensors/model/w.npy: npy: shape [100000 100000] of <f4 needs 40000000000 data bytes, the stream holds 64"},
		{"huge_shape_deflated", craft(t, entry{"tensors/model/w.npy", zip.Deflate, bytesOf(huge)}), Limits{}, "needs 40000000000 data bytes"},
		{"bomb", craft(t, bombEntry(80<<20)), Limits{}, "is 335544320 bytes, more than the 268435456 a checkpoint tensor may have"},
		{"total", craft(t, entry{"tensors/model/a.npy", zip.Store, bytesOf(good)}, entry{"tensors/model/b.npy", zip.Store, bytesOf(good)}),
			Limits{MaxTotalBytes: 40}, "the tensors so far need 48 bytes, more than the 40"},
		{"expect", stored, Limits{Expect: func(name string, shape []int64, _ statedict.DType) error {
			return fmt.Errorf("no %s %v in this network", name, shape)
		}}, "tensors/model/w.npy: no model/w [2 3] in this network"},
		{"dtype", craft(t, entry{"tensors/model/w.npy", zip.Store, bytesOf(tensorNPY(t, npy.Array{Shape: []int{1}, Data: []float64{1}}))}), Limits{},
			"dtype <f8"},
		{"twice", craft(t, entry{"tensors/model/w.npy", zip.Store, bytesOf(good)}, entry{"tensors/model/w.npy", zip.Store, bytesOf(good)}), Limits{},
			"a second tensor of this name"},
		{"extra_bytes", craft(t, entry{"tensors/model/w.npy", zip.Store, bytesOf(append(bytes.Clone(good), 1, 2, 3, 4))}), Limits{},
			"needs 24 data bytes, the stream holds 28"},
		{"meta_bomb", craft(t, entry{"meta.json", zip.Deflate, zeros(20 << 20)}), Limits{}, "meta.json: 20971520 bytes (at most 16777216 are read)"},
		{"truncated", stored[:len(stored)*2/3], Limits{}, "not a dira checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readBytes(tc.file, tc.lim)
			if err == nil || !strings.Contains(err.Error(), "x.ckpt") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to name x.ckpt and say %q", err, tc.want)
			}
		})
	}
	if _, err := readBytes(stored, Limits{}); err != nil {
		t.Fatalf("the well-formed file: %v", err)
	}
}

// TestReadNamesTruncatedData: a stored entry cut short inside a valid
// archive (its sizes patched) reads as truncated, not as a format error.
func TestReadNamesTruncatedData(t *testing.T) {
	good := tensorNPY(t, npy.Array{Shape: []int{4}, Data: []float32{1, 2, 3, 4}})
	b := craft(t, entry{"tensors/model/w.npy", zip.Store, bytesOf(good)})
	_, err := readBytes(b[:len(b)-1], Limits{})
	if err == nil {
		t.Fatal("a file missing its last byte was accepted")
	}
	// Damage one data byte: the CRC check catches it.
	i := bytes.Index(b, good)
	d := bytes.Clone(b)
	d[i+len(good)-1] ^= 0x40
	if _, err := readBytes(d, Limits{}); !errors.Is(err, zip.ErrChecksum) {
		t.Fatalf("damaged data: %v, want a checksum error", err)
	}
}

// TestHostileCheckpointMemory: refusing a checkpoint whose npy header
// declares 10^10 values, and one whose deflated entry (1.1 MB) inflates to
// 1.1 GB, each takes under 200 MB at the peak (measured in a child process).
func TestHostileCheckpointMemory(t *testing.T) {
	cases := map[string]func(t testing.TB) []byte{
		"huge_header": func(t testing.TB) []byte {
			return craft(t, entry{"tensors/model/w.npy", zip.Store, bytesOf(append(npyHeader("<f4", "10000000000,"), make([]byte, 64)...))})
		},
		"zip_bomb": func(t testing.TB) []byte { return craft(t, bombEntry(275_000_000)) },
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range cases {
			if !yield(k) {
				return
			}
		}
	}) {
		t.Run(name, func(t *testing.T) {
			env := "DIRA_TEST_CKPT_" + strings.ToUpper(name)
			if memtest.Child(t) {
				_, err := Read(os.Getenv(env))
				if err == nil || !strings.Contains(err.Error(), "tensors/model/w.npy") {
					t.Fatalf("error %v, want a refusal naming the tensor", err)
				}
				t.Log(err)
				return
			}
			p := filepath.Join(t.TempDir(), name+".ckpt")
			b := cases[name](t)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv(env, p)
			peak := memtest.PeakRSS(t)
			t.Logf("%s (%d bytes on disk): peak RSS %s while refused", name, len(b), memtest.MB(peak))
			if peak > 200<<20 {
				t.Fatalf("peak RSS %s, want under 200 MB", memtest.MB(peak))
			}
		})
	}
}

// FuzzRead: any bytes either read as a checkpoint whose tensors match their
// shapes or give an error naming the file; nothing panics.
func FuzzRead(f *testing.F) {
	w := statedict.Tensor{Name: GroupModel + "w", Shape: []int64{2, 3}, F32: []float32{1, 2, 3, 4, 5, 6}}
	n := statedict.Tensor{Name: GroupModel + "n", Shape: []int64{}, DType: statedict.Int64, I64: []int64{7}}
	p := filepath.Join(f.TempDir(), "seed.ckpt")
	if _, err := Write(p, Meta{Stage: "warmup"}, []Entry{Values(w.Name, w), Values(n.Name, n)}); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(craft(f, entry{"tensors/model/w.npy", zip.Deflate, bytesOf(tensorNPY(f, npy.Array{Shape: []int{3}, Data: []int64{1, 2, 3}}))}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ReadFrom(bytes.NewReader(b), int64(len(b)), "fuzz.ckpt", Limits{MaxTotalBytes: 64 << 20})
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.ckpt") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, x := range c.Tensors {
			if err := x.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
