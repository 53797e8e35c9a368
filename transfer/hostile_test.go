package transfer

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"dira/internal/memtest"
	"dira/internal/torch/torchtest"
	"dira/internal/torchsave"
)

// hostile writes testdata/make_hostile.py's files into a temporary folder.
func hostile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("/usr/bin/python3", "testdata/make_hostile.py", dir).CombinedOutput(); err != nil {
		t.Fatalf("make_hostile.py: %v\n%s", err, out)
	}
	return dir
}

// TestReadFileHostileSizes: a .pth whose pickle declares a storage of 10^10
// elements, and one whose tensor is 100000x100000 with stride 0, are refused
// with an error naming the file and the tensor, and refusing each takes
// under 200 MB at the peak (measured in a child process), of which the
// process linked with libtorch takes most before reading anything: the
// refusal itself must add under 20 MB to that baseline.
func TestReadFileHostileSizes(t *testing.T) {
	var baseline int64
	t.Run("baseline", func(t *testing.T) {
		if memtest.Child(t) {
			torchtest.Pin(t)
			return
		}
		baseline = memtest.PeakRSS(t)
		t.Logf("peak RSS of a child that reads nothing: %s", memtest.MB(baseline))
	})
	for _, tc := range []struct{ file, want string }{
		{"storage_1e10.pth", `tensor ["encoder.conv1.weight"]: storage "0" declares 10000000000 Float elements (40000000000 bytes), more than the 268435456 bytes a storage may have`},
		{"stride0.pth", `tensor ["encoder.conv1.weight"]: shape [100000 100000] is 10000000000 values (40000000000 bytes as read), more than the 268435456 bytes a tensor may have`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			env := "DIRA_TEST_HOSTILE_PTH"
			if memtest.Child(t) {
				torchtest.Pin(t)
				p := os.Getenv(env)
				_, err := ReadFile(p)
				if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want it to name %s and say %q", err, p, tc.want)
				}
				t.Log(err)
				return
			}
			p := filepath.Join(hostile(t), tc.file)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv(env, p)
			peak := memtest.PeakRSS(t)
			t.Logf("%s (%d bytes): peak RSS %s while refused (%s over the baseline)", tc.file, st.Size(), memtest.MB(peak), memtest.MB(peak-baseline))
			if peak > 200<<20 || peak-baseline > 20<<20 {
				t.Fatalf("peak RSS %s (baseline %s), want under 200 MB and under 20 MB over the baseline", memtest.MB(peak), memtest.MB(baseline))
			}
		})
	}
}

// deflate rewrites a zip archive with every record deflated, as
// `zip -r` or Python's zipfile.ZIP_DEFLATED would.
func deflate(t *testing.T, src, dst string) {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, r); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReadFileDeflated: a .pth whose records are deflated, which torch.load
// reads (checked here with PyTorch), reads as the stored original does
// (issue 13: gotch's reader failed with "loadBinPersId() failed: EOF").
func TestReadFileDeflated(t *testing.T) {
	torchtest.Pin(t)
	dir := fixtures(t)
	for _, name := range []string{"unet.pth", "checkpoint.pth"} {
		t.Run(name, func(t *testing.T) {
			torchtest.Pin(t)
			src := filepath.Join(dir, name)
			dst := filepath.Join(t.TempDir(), "deflated_"+name)
			deflate(t, src, dst)
			script := `import sys, torch
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
a, b = a.get("state_dict", a), b.get("state_dict", b)
assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
print(len(a))`
			out, err := exec.Command("/usr/bin/python3", "-c", script, src, dst).CombinedOutput()
			if err != nil {
				t.Fatalf("torch.load of the deflated file: %v\n%s", err, out)
			}
			want, got := read(t, src), read(t, dst)
			if !slices.Equal(want.Names(), got.Names()) || len(got.StateDict) == 0 {
				t.Fatalf("keys differ")
			}
			for i, a := range want.StateDict {
				b := got.StateDict[i]
				if !slices.Equal(a.Shape, b.Shape) || !slices.Equal(a.F32, b.F32) || !slices.Equal(a.I64, b.I64) {
					t.Fatalf("%s differs", a.Name)
				}
			}
			t.Logf("%s: %s keys in torch.load, %d read here", name, strings.TrimSpace(string(out)), len(got.StateDict))
		})
	}
}

// TestReadFileTruncated: a .pth cut short, in either layout and anywhere,
// is reported as truncated (issue 13: gotch said "unsupported persistent
// Id").
func TestReadFileTruncated(t *testing.T) {
	torchtest.Pin(t)
	dir := fixtures(t)
	tmp := t.TempDir()
	for _, name := range []string{"unet.pth", "checkpoint.pth", "checkpoint_legacy.pth"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, frac := range []int{1, 10, 50, 90, 99} {
			p := filepath.Join(tmp, name)
			if err := os.WriteFile(p, b[:len(b)*frac/100], 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadFile(p)
			if !errors.Is(err, torchsave.ErrTruncated) || !errors.Is(err, ErrNotPyTorch) || !strings.Contains(err.Error(), p) {
				t.Errorf("%s cut at %d%%: %v, want a truncated file naming it", name, frac, err)
			}
		}
	}
}

// FuzzRead: transfer.Read on any bytes never panics, and what it accepts is
// a non-empty state_dict of well-formed tensors.
func FuzzRead(f *testing.F) {
	// testdata/fuzz/FuzzRead holds internal/torchsave's gen_fixtures.py
	// zip.pth and legacy.pth (scripts/fuzzseed.py).
	f.Add([]byte("\x80\x02}q\x00."))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Read(bytes.NewReader(b), int64(len(b)), "fuzz.pth", torchsave.Limits{MaxTensorBytes: 1 << 20, MaxTotalBytes: 16 << 20})
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.pth") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(file.StateDict) == 0 {
			t.Fatal("an empty state_dict accepted")
		}
		for _, x := range file.StateDict {
			if err := x.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
