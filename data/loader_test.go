package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testSource is a synthetic source whose listed indices fail to load and which
// counts Load calls.
type testSource struct {
	*Synthetic
	bad   map[int]bool
	loads atomic.Int64
	delay time.Duration
}

func newTestSource(n int, bad ...int) *testSource {
	s := &testSource{Synthetic: NewSynthetic(n, 48, 5, 0), bad: map[int]bool{}}
	for _, b := range bad {
		s.bad[b] = true
	}
	return s
}

func (s *testSource) Load(i int) (*Image, error) {
	s.loads.Add(1)
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if s.bad[i] {
		return nil, fmt.Errorf("data: decode %s: png: invalid format", s.Name(i))
	}
	return s.Synthetic.Load(i)
}

func smallConfig(workers int) Config {
	c := DefaultConfig()
	c.ImageSize = 32
	c.Workers = workers
	c.Prefetch = 2
	return c
}

func collect(t *testing.T, l *Loader, epoch, max int) []*Batch {
	t.Helper()
	e := l.Epoch(context.Background(), epoch)
	defer e.Close()
	var out []*Batch
	for len(out) < max {
		b, err := e.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func sameBatch(a, b *Batch) bool {
	return slices.Equal(a.Query, b.Query) && slices.Equal(a.Key, b.Key) && slices.Equal(a.Target, b.Target) &&
		slices.Equal(a.Names, b.Names) && a.N == b.N && a.Next == b.Next
}

// TestLoaderDeterminism: the same seed and worker count give identical first two
// batches in two runs; another worker count gives them too; another epoch or
// seed does not.
func TestLoaderDeterminism(t *testing.T) {
	src := newTestSource(40)
	run := func(workers int, seed uint64, epoch int) []*Batch {
		l, err := NewLoader(src, smallConfig(workers), 8, seed)
		if err != nil {
			t.Fatal(err)
		}
		return collect(t, l, epoch, 2)
	}
	a, b := run(3, 42, 0), run(3, 42, 0)
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("got %d and %d batches, want 2", len(a), len(b))
	}
	for i := range a {
		if !sameBatch(a[i], b[i]) {
			t.Fatalf("batch %d differs between two runs with the same seed and workers", i)
		}
	}
	c := run(1, 42, 0)
	for i := range a {
		if !sameBatch(a[i], c[i]) {
			t.Fatalf("batch %d differs between 3 workers and 1 worker", i)
		}
	}
	if d := run(3, 42, 1); sameBatch(a[0], d[0]) {
		t.Error("epochs 0 and 1 gave the same first batch")
	}
	if d := run(3, 43, 0); sameBatch(a[0], d[0]) {
		t.Error("seeds 42 and 43 gave the same first batch")
	}
}

func TestLoaderBatches(t *testing.T) {
	src := newTestSource(21)
	l, err := NewLoader(src, smallConfig(2), 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	if l.BatchesPerEpoch() != 4 {
		t.Errorf("BatchesPerEpoch = %d, want 4 (drop_last)", l.BatchesPerEpoch())
	}
	bs := collect(t, l, 0, 100)
	if len(bs) != 4 {
		t.Fatalf("%d batches, want 4", len(bs))
	}
	seen := map[string]bool{}
	for i, b := range bs {
		hw := 32 * 32
		if b.Index != i || b.N != 5 || len(b.Query) != 5*3*hw || len(b.Key) != 5*3*hw || len(b.Target) != 5*hw || len(b.Names) != 5 {
			t.Fatalf("batch %d: index %d, N %d, sizes %d %d %d %d", i, b.Index, b.N, len(b.Query), len(b.Key), len(b.Target), len(b.Names))
		}
		for _, v := range b.Query {
			if v < 0 || v > 1 {
				t.Fatalf("value %v outside [0, 1]", v)
			}
		}
		// Gray images give three equal planes.
		if !slices.Equal(b.Query[:hw], b.Query[hw:2*hw]) || !slices.Equal(b.Key[hw:2*hw], b.Key[2*hw:3*hw]) {
			t.Error("channels of a gray view differ")
		}
		for _, n := range b.Names {
			if seen[n] {
				t.Errorf("%s twice in one epoch", n)
			}
			seen[n] = true
		}
	}
	// The order is a shuffle, not the source order.
	if bs[0].Names[0] == src.Name(0) && bs[0].Names[1] == src.Name(1) && bs[0].Names[2] == src.Name(2) {
		t.Error("epoch not shuffled")
	}

	// Without drop_last the last batch is partial; without shuffle it is in order.
	l, _ = NewLoader(src, smallConfig(2), 5, 1, WithDropLast(false), WithShuffle(false))
	bs = collect(t, l, 0, 100)
	if len(bs) != 5 || bs[4].N != 1 || len(bs[4].Query) != 3*32*32 || bs[4].Names[0] != src.Name(20) || bs[0].Names[0] != src.Name(0) {
		t.Errorf("no drop_last: %d batches, last N %d", len(bs), bs[len(bs)-1].N)
	}

	// Mode di: no target.
	c := smallConfig(2)
	c.Restoration = false
	l, _ = NewLoader(src, c, 5, 1)
	if b := collect(t, l, 0, 1)[0]; b.Target != nil {
		t.Error("target present without restoration")
	}
}

// TestLoaderBadImages: under skip, bad images are counted and the batch is
// filled with the next good ones (never zeros); under fail, the epoch stops with
// an error naming the file.
func TestLoaderBadImages(t *testing.T) {
	bad := []int{0, 3, 4, 17}
	src := newTestSource(24, bad...)
	cfg := smallConfig(3)
	cfg.MaxSkippedFraction = 0.25 // 4 of 24 is above the default tenth
	l, err := NewLoader(src, cfg, 4, 1, WithShuffle(false))
	if err != nil {
		t.Fatal(err)
	}
	bs := collect(t, l, 0, 100)
	if len(bs) != 5 { // 20 good images, batch 4
		t.Fatalf("%d batches, want 5", len(bs))
	}
	var names []string
	for _, b := range bs {
		if b.N != 4 || len(b.Names) != 4 {
			t.Fatalf("batch of %d", b.N)
		}
		names = append(names, b.Names...)
	}
	var want []string
	for i := 0; i < 24; i++ {
		if !slices.Contains(bad, i) {
			want = append(want, src.Name(i))
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	// Batch 0 is images 1 2 5 6 (0, 3, 4 skipped); batch 3 is 15 16 18 19.
	if len(bs[0].Skipped) != 3 || bs[0].Skipped[2].Name != src.Name(4) || len(bs[1].Skipped) != 0 || len(bs[3].Skipped) != 1 {
		t.Errorf("per-batch skips %v / %v", bs[0].Skipped, bs[1].Skipped)
	}
	sk := l.Skipped()
	if len(sk) != 4 || sk[3].Name != src.Name(17) || !strings.Contains(sk[3].Err.Error(), src.Name(17)) {
		t.Errorf("Skipped() = %v", sk)
	}

	c := smallConfig(3)
	c.BadImages = BadImagesFail
	l, _ = NewLoader(src, c, 4, 1, WithShuffle(false))
	e := l.Epoch(context.Background(), 0)
	defer e.Close()
	_, err = e.Next()
	if err == nil || !strings.Contains(err.Error(), src.Name(0)) || !strings.Contains(err.Error(), "bad_images") {
		t.Fatalf("fail policy: error %v should name %s", err, src.Name(0))
	}
	if _, err2 := e.Next(); err2 == nil {
		t.Error("the epoch went on after a fatal error")
	}
}

// TestLoaderSkipLimit: under the skip policy an epoch stops with
// TooManySkippedError as soon as it has skipped more images than
// max_skipped_fraction of the source allows, saying how many; at the limit
// it runs to its end. Before, an epoch with every image unreadable simply
// yielded no batch.
func TestLoaderSkipLimit(t *testing.T) {
	src := newTestSource(20, 1, 2, 7, 12, 19) // 5 of 20 unreadable
	for _, tc := range []struct {
		frac  float64
		stops bool
	}{
		{0.25, false}, // floor(0.25*20) = 5 skips allowed
		{0.2, true},
		{0, true},
	} {
		cfg := smallConfig(2)
		cfg.MaxSkippedFraction = tc.frac
		l, err := NewLoader(src, cfg, 3, 1, WithShuffle(false))
		if err != nil {
			t.Fatal(err)
		}
		e := l.Epoch(context.Background(), 0)
		n := 0
		for {
			b, err := e.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				var tm *TooManySkippedError
				if !errors.As(err, &tm) {
					t.Fatalf("fraction %v: %v", tc.frac, err)
				}
				if !tc.stops {
					t.Errorf("fraction %v: %v", tc.frac, err)
				}
				allowed := int(tc.frac * 20)
				if tm.Skipped != allowed+1 || tm.Allowed != allowed || tm.Images != 20 || tm.First.Name != src.Name(1) ||
					!strings.Contains(err.Error(), fmt.Sprintf("%d of the %d images read so far", allowed+1, tm.Read)) {
					t.Errorf("fraction %v: %+v\n%v", tc.frac, tm, err)
				}
				n = -1
				break
			}
			n += b.N
		}
		e.Close()
		if !tc.stops && n != 15 {
			t.Errorf("fraction %v: %d images in batches, want 15", tc.frac, n)
		}
		if tc.stops && n != -1 {
			t.Errorf("fraction %v: no error, want TooManySkippedError", tc.frac)
		}
	}
}

func TestLoaderResume(t *testing.T) {
	src := newTestSource(30, 2, 11)
	l, _ := NewLoader(src, smallConfig(2), 4, 9)
	all := collect(t, l, 3, 100)
	if len(all) != 7 {
		t.Fatalf("%d batches, want 7", len(all))
	}
	e := l.EpochFrom(context.Background(), 3, all[2].Next)
	defer e.Close()
	for i := 3; i < len(all); i++ {
		b, err := e.Next()
		if err != nil {
			t.Fatal(err)
		}
		if b.Index != i || !sameBatch(b, all[i]) {
			t.Fatalf("resumed batch %d differs", i)
		}
	}
	if _, err := e.Next(); err != io.EOF {
		t.Errorf("after the last batch: %v, want io.EOF", err)
	}
}

func TestLoaderCancel(t *testing.T) {
	src := newTestSource(200)
	src.delay = 2 * time.Millisecond
	l, _ := NewLoader(src, smallConfig(2), 4, 1)
	ctx, cancel := context.WithCancel(context.Background())
	e := l.Epoch(ctx, 0)
	if _, err := e.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err := e.Next()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v, want context.Canceled", err)
	}
	done := make(chan struct{})
	go func() { e.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after cancellation")
	}
	if n := src.loads.Load(); n >= 200 {
		t.Errorf("%d loads: cancellation did not stop the workers", n)
	}
}

// TestLoaderBoundedMemory: with a consumer that stops reading, the loader stops
// loading once the queue, the batch being sent and the in-flight window are full.
func TestLoaderBoundedMemory(t *testing.T) {
	src := newTestSource(1000)
	c := smallConfig(2)
	const batch = 4
	l, _ := NewLoader(src, c, batch, 1)
	e := l.Epoch(context.Background(), 0)
	defer e.Close()
	if _, err := e.Next(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// Consumed batch + Prefetch queued + one blocked in send + the window.
	bound := int64(batch + c.Prefetch*batch + batch + (batch + 2*c.Workers))
	if n := src.loads.Load(); n > bound {
		t.Errorf("%d images loaded while the consumer waits, bound %d", n, bound)
	}
}

func TestNewLoaderErrors(t *testing.T) {
	c := smallConfig(0)
	c.ImageSize = 30
	_, err := NewLoader(NewSynthetic(0, 32, 1, 0), c, 0, 1)
	for _, want := range []string{"empty source", "batch size", "data.workers", "data.image_size"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v should mention %q", err, want)
		}
	}
}

func TestWritePreview(t *testing.T) {
	c := DefaultConfig()
	c.ImageSize = 64
	c.Synthetic.Size = 96
	var buf bytes.Buffer
	if err := WritePreview(&buf, c, 3, 1); err != nil {
		t.Fatal(err)
	}
	m, err := Decode(buf.Bytes(), "preview.png")
	if err != nil {
		t.Fatal(err)
	}
	// Three rows of view 1 | view 2 | target.
	if m.W != 3*64+4*previewGap || m.H != 3*64+4*previewGap {
		t.Errorf("preview %dx%d", m.W, m.H)
	}
	c.Restoration = false
	buf.Reset()
	if err := WritePreview(&buf, c, 2, 1); err != nil {
		t.Fatal(err)
	}
	if m, err := Decode(buf.Bytes(), "preview.png"); err != nil || m.W != 2*64+3*previewGap || m.H != 2*64+3*previewGap {
		t.Errorf("preview without restoration: %v", err)
	}
	if err := WritePreview(&buf, c, 0, 1); err == nil {
		t.Error("n = 0 accepted")
	}
	c.Workers = 0
	if err := WritePreview(&buf, c, 1, 1); err == nil || !strings.Contains(err.Error(), "data.workers") {
		t.Errorf("invalid config: %v", err)
	}
}
