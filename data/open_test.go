package data

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// returnsWithin runs f and fails the test if it has not returned after d: before
// the regular-file check, opening a FIFO blocked for ever.
func returnsWithin[T any](t *testing.T, d time.Duration, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("still blocked after %v", d)
		panic("unreachable")
	}
}

// TestDecodeFileRefusesSpecialFiles: a FIFO, a device and a folder named
// like images are refused at once as not regular files; a symbolic link to
// a regular image is read.
func TestDecodeFileRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(dir, "folder.png")
	os.Mkdir(folder, 0o755)
	for _, tc := range []struct{ path, what string }{
		{fifo, "FIFO"}, {"/dev/zero", "character device"}, {folder, "folder"},
	} {
		err := returnsWithin(t, 5*time.Second, func() error { _, err := DecodeFile(tc.path); return err })
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.what) {
			t.Errorf("%s: error %v, want ErrNotRegular naming the path and %q", tc.path, err, tc.what)
		}
	}
	good := filepath.Join(dir, "good.png")
	writePNG(t, good, DrawRadiograph(32, 1, 0))
	link := filepath.Join(dir, "link.png")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeFile(link); err != nil {
		t.Errorf("symbolic link to a PNG: %v", err)
	}
}

// TestReadDeadline: a read that does not finish in time is given up with
// ErrReadTimeout (a pipe with no writer never finishes).
func TestReadDeadline(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Now()
	err = returnsWithin(t, 5*time.Second, func() error { _, err := readAll(r, "pipe", 0, 1<<20, 100*time.Millisecond); return err })
	if !errors.Is(err, ErrReadTimeout) || !strings.Contains(err.Error(), "pipe") {
		t.Fatalf("error %v, want ErrReadTimeout naming the file", err)
	}
	t.Logf("gave up after %v", time.Since(start).Round(time.Millisecond))
}

// TestReadFileLimit: a file over the size limit is refused before reading;
// one within it is read whole, whatever its size.
func TestReadFileLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.png")
	os.WriteFile(p, []byte("0123456789A"), 0o644)
	if _, err := readFile(p, time.Minute, 10); !errors.Is(err, ErrFileTooLarge) || !strings.Contains(err.Error(), p) {
		t.Errorf("11 bytes, limit 10: %v, want ErrFileTooLarge naming the file", err)
	}
	b, err := readFile(p, time.Minute, 11)
	if err != nil || string(b) != "0123456789A" {
		t.Errorf("11 bytes, limit 11: %q, %v", b, err)
	}
	// Larger than the read buffer's first guess: a file that grew after
	// its Stat is read to its end too.
	f, _ := os.Open(p)
	b, err = readAll(f, p, 3, 100, time.Minute)
	if err != nil || string(b) != "0123456789A" {
		t.Errorf("size hint 3: %q, %v", b, err)
	}
}

// TestLoaderSkipsFIFO: a folder source with a FIFO among its PNGs loads
// every batch under the skip policy, reporting the FIFO as a bad image;
// before, the worker that opened it blocked and the epoch never ended.
func TestLoaderSkipsFIFO(t *testing.T) {
	root := t.TempDir()
	for i := range 9 {
		writePNG(t, filepath.Join(root, "img"+string(rune('a'+i))+".png"), DrawRadiograph(48, uint64(i), 0))
	}
	if err := syscall.Mkfifo(filepath.Join(root, "imgz.png"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := NewFolderSource(root, []string{".png"})
	if err != nil || src.Len() != 10 {
		t.Fatalf("source: %v (%d files)", err, src.Len())
	}
	c := smallConfig(2)
	c.MaxSkippedFraction = 0.1
	l, err := NewLoader(src, c, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	n := returnsWithin(t, 20*time.Second, func() int {
		e := l.Epoch(context.Background(), 0)
		defer e.Close()
		n := 0
		for {
			b, err := e.Next()
			if err == io.EOF {
				return n
			}
			if err != nil {
				t.Error(err)
				return n
			}
			n += b.N
		}
	})
	sk := l.Skipped()
	if n != 9 || len(sk) != 1 || !errors.Is(sk[0].Err, ErrNotRegular) || !strings.HasSuffix(sk[0].Name, "imgz.png") {
		t.Errorf("%d images in batches, skipped %v; want 9 and the FIFO", n, sk)
	}
}
