package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
)

// Loader turns a Source into batches of training tensors. Worker goroutines
// load and augment samples ahead of the consumer; a single collector puts them
// back in permutation order and packs them into batches, so a batch depends only
// on (seed, epoch, position), never on the number of workers or their timing.
//
// Memory is bounded: at most batch+2·workers decoded samples are in flight, plus
// the batch being packed and Prefetch finished batches in the queue.
type Loader struct {
	src      Source
	cfg      Config
	batch    int
	seed     uint64
	shuffle  bool
	dropLast bool
	pool     sync.Pool // *batchBuffers

	mu      sync.Mutex
	skipped []Skip
}

// Option changes a Loader default.
type Option func(*Loader)

// WithShuffle sets whether each epoch visits the images in a permutation drawn
// from (seed, epoch) (default true) or in source order.
func WithShuffle(on bool) Option { return func(l *Loader) { l.shuffle = on } }

// WithDropLast sets whether an epoch's last, incomplete batch is dropped
// (default true, as in the official loaders).
func WithDropLast(on bool) Option { return func(l *Loader) { l.dropLast = on } }

// NewLoader returns a Loader that reads src with the settings of cfg (image
// size, augmentation, restoration, workers, prefetch, bad-image policy) and
// draws every random number from seed.
func NewLoader(src Source, cfg Config, batchSize int, seed uint64, opts ...Option) (*Loader, error) {
	var errs []error
	if src == nil || src.Len() == 0 {
		errs = append(errs, errors.New("data: loader: empty source"))
	}
	if batchSize < 1 {
		errs = append(errs, fmt.Errorf("data: loader: batch size must be >= 1, got %d", batchSize))
	}
	// Check the fields the loader uses; the source fields were used to build src.
	c := cfg
	c.Source, c.Synthetic = SourceSynthetic, DefaultConfig().Synthetic
	for _, err := range c.Validate("data") {
		errs = append(errs, fmt.Errorf("data: loader: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	l := &Loader{src: src, cfg: cfg, batch: batchSize, seed: seed, shuffle: true, dropLast: true}
	for _, o := range opts {
		o(l)
	}
	return l, nil
}

// BatchesPerEpoch is the number of batches in an epoch when no image is
// skipped.
func (l *Loader) BatchesPerEpoch() int {
	if l.dropLast {
		return l.src.Len() / l.batch
	}
	return (l.src.Len() + l.batch - 1) / l.batch
}

// Skip is a bad image that the skip policy left out.
type Skip struct {
	Name string
	Err  error
}

// Skipped returns every image skipped so far, over all epochs, in the order met.
func (l *Loader) Skipped() []Skip {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Skip(nil), l.skipped...)
}

// SampleRNG returns the random stream of one sample: it depends only on the
// loader seed, the epoch and the image's index in the source.
func SampleRNG(seed uint64, epoch, index int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, splitmix64(splitmix64(uint64(epoch))+uint64(index))))
}

// Order returns the order in which an epoch visits the source's n images: a
// permutation drawn from (seed, epoch), or 0..n-1 without shuffling.
func Order(seed uint64, epoch, n int, shuffle bool) []int {
	if !shuffle {
		o := make([]int, n)
		for i := range o {
			o[i] = i
		}
		return o
	}
	r := rand.New(rand.NewPCG(splitmix64(seed^0x6a09e667f3bcc909), splitmix64(^uint64(epoch))))
	return r.Perm(n)
}

// Position is where an epoch stands: the number of the next batch and the
// position in the epoch's order of the next image to read.
type Position struct {
	Batch  int
	Sample int
}

// Batch is one batch of training tensors, row-major float32 in [0,1] (v/255, as
// torchvision's ToTensor), without normalisation.
type Batch struct {
	Epoch   int
	Index   int // batch number within the epoch
	N, H, W int
	Query   []float32 // [N,3,H,W]: view 1, distorted in modes dir/dira
	Key     []float32 // [N,3,H,W]: view 2, distorted in modes dir/dira
	Target  []float32 // [N,1,H,W]: clean gray crop of view 1; nil without restoration
	Names   []string  // Source.Name of each sample
	Indices []int     // source index of each sample
	Skipped []Skip    // bad images passed over while filling this batch
	// Next is the position after this batch: EpochFrom(ctx, epoch, b.Next)
	// continues the epoch exactly where this batch ends.
	Next Position

	buf  *batchBuffers
	pool *sync.Pool
}

// Release hands the batch's buffers back to the loader for reuse. The batch must
// not be used afterwards. Calling it is optional.
func (b *Batch) Release() {
	if b.buf != nil && b.pool != nil {
		b.pool.Put(b.buf)
	}
	b.buf, b.pool, b.Query, b.Key, b.Target = nil, nil, nil, nil, nil
}

type batchBuffers struct{ q, k, t []float32 }

// toFloat is ToTensor's byte → float32 conversion, v/255 in float32.
var toFloat = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return t
}()

// putPlanes writes m as C planes of dst (HW floats each): a gray image fills
// every plane with the same values, like PIL's convert('RGB').
func putPlanes(dst []float32, m *Image, planes int) {
	hw := m.W * m.H
	if m.C == 1 {
		p0 := dst[:hw]
		for i, v := range m.Pix[:hw] {
			p0[i] = toFloat[v]
		}
		for p := 1; p < planes; p++ {
			copy(dst[p*hw:(p+1)*hw], p0)
		}
		return
	}
	for p := 0; p < planes; p++ {
		dp := dst[p*hw : (p+1)*hw]
		for i := range dp {
			dp[i] = toFloat[m.Pix[3*i+p]]
		}
	}
}

// Epoch is one pass over the source in progress. Call Next until it returns
// io.EOF (or an error), and Close when done, also on early exit.
type Epoch struct {
	out    chan epochItem
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
	epoch  int
}

type epochItem struct {
	b   *Batch
	err error
}

type sampleResult struct {
	pos, index int
	s          Sample
	err        error
}

// Epoch starts epoch number epoch from its beginning.
func (l *Loader) Epoch(ctx context.Context, epoch int) *Epoch {
	return l.EpochFrom(ctx, epoch, Position{})
}

// EpochFrom starts epoch number epoch at position from, which is a Batch.Next of
// an earlier run of the same epoch (resuming an interrupted run) or the zero
// Position.
func (l *Loader) EpochFrom(ctx context.Context, epoch int, from Position) *Epoch {
	ctx, cancel := context.WithCancel(ctx)
	e := &Epoch{out: make(chan epochItem, l.cfg.Prefetch), ctx: ctx, cancel: cancel, epoch: epoch}
	// work stops the goroutines; it ends with ctx or when the collector returns
	// (end of epoch, or an error under the fail policy), so nothing is left
	// running even if the caller forgets Close.
	work, stopWork := context.WithCancel(ctx)
	order := Order(l.seed, epoch, l.src.Len(), l.shuffle)
	n := len(order)
	start := min(max(from.Sample, 0), n)
	workers := l.cfg.Workers
	window := l.batch + 2*workers
	tokens := make(chan struct{}, window) // one per dispatched, not yet collected sample
	jobs := make(chan int, window)
	results := make(chan sampleResult, window)

	e.wg.Add(2 + workers)
	go func() { // dispatcher
		defer e.wg.Done()
		defer close(jobs)
		for pos := start; pos < n; pos++ {
			select {
			case tokens <- struct{}{}:
			case <-work.Done():
				return
			}
			jobs <- pos // never blocks: at most window jobs are outstanding
		}
	}()
	var workersWG sync.WaitGroup
	workersWG.Add(workers)
	for range workers {
		go func() {
			defer e.wg.Done()
			defer workersWG.Done()
			for pos := range jobs {
				if work.Err() != nil {
					continue
				}
				s, err := l.sample(epoch, order[pos])
				results <- sampleResult{pos: pos, index: order[pos], s: s, err: err} // never blocks, as above
			}
		}()
	}
	go func() { workersWG.Wait(); close(results) }()
	go func() { // collector
		defer e.wg.Done()
		defer close(e.out)
		defer stopWork()
		l.collect(work, e, epoch, n, from.Batch, start, tokens, results)
	}()
	return e
}

// sample loads and augments one image, turning a panic in a Source into an
// error that names the image.
func (l *Loader) sample(epoch, index int) (s Sample, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("data: sample %s: panic: %v", l.src.Name(index), p)
		}
	}()
	img, err := l.src.Load(index)
	if err != nil {
		return Sample{}, err
	}
	return MakeSample(SampleRNG(l.seed, epoch, index), img, l.cfg.ImageSize, l.cfg.Augment, l.cfg.Restoration), nil
}

// collect receives samples, restores the epoch order, applies the bad-image
// policy and packs batches.
func (l *Loader) collect(ctx context.Context, e *Epoch, epoch, n, batchNo, start int, tokens chan struct{}, results chan sampleResult) {
	send := func(it epochItem) bool {
		select {
		case e.out <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	pending := make(map[int]sampleResult)
	var cur *Batch
	for next := start; next < n; {
		r, ok := pending[next]
		if !ok {
			select {
			case res, open := <-results:
				if !open {
					return // cancelled
				}
				pending[res.pos] = res
			case <-ctx.Done():
				return
			}
			continue
		}
		delete(pending, next)
		next++
		<-tokens
		if cur == nil {
			cur = l.newBatch(epoch, batchNo)
		}
		if r.err != nil {
			if l.cfg.BadImages == BadImagesFail {
				send(epochItem{err: fmt.Errorf("data: epoch %d: %w (set data.bad_images: skip to skip bad images)", epoch, r.err)})
				return
			}
			sk := Skip{Name: l.src.Name(r.index), Err: r.err}
			cur.Skipped = append(cur.Skipped, sk)
			l.mu.Lock()
			l.skipped = append(l.skipped, sk)
			l.mu.Unlock()
			continue
		}
		l.add(cur, r)
		if len(cur.Names) == l.batch {
			cur.Next = Position{Batch: batchNo + 1, Sample: next}
			if !send(epochItem{b: cur}) {
				return
			}
			cur, batchNo = nil, batchNo+1
		}
	}
	if cur != nil && len(cur.Names) > 0 && !l.dropLast {
		cur.N = len(cur.Names)
		hw := cur.H * cur.W
		cur.Query, cur.Key = cur.Query[:cur.N*3*hw], cur.Key[:cur.N*3*hw]
		if cur.Target != nil {
			cur.Target = cur.Target[:cur.N*hw]
		}
		cur.Next = Position{Batch: batchNo + 1, Sample: n}
		send(epochItem{b: cur})
	}
}

func (l *Loader) newBatch(epoch, index int) *Batch {
	s := l.cfg.ImageSize
	hw := s * s
	buf, _ := l.pool.Get().(*batchBuffers)
	if buf == nil {
		buf = &batchBuffers{q: make([]float32, l.batch*3*hw), k: make([]float32, l.batch*3*hw)}
		if l.cfg.Restoration {
			buf.t = make([]float32, l.batch*hw)
		}
	}
	return &Batch{
		Epoch: epoch, Index: index, N: l.batch, H: s, W: s,
		Query: buf.q, Key: buf.k, Target: buf.t,
		buf: buf, pool: &l.pool,
	}
}

func (l *Loader) add(b *Batch, r sampleResult) {
	i := len(b.Names)
	hw := b.H * b.W
	putPlanes(b.Query[i*3*hw:(i+1)*3*hw], r.s.Query, 3)
	putPlanes(b.Key[i*3*hw:(i+1)*3*hw], r.s.Key, 3)
	if b.Target != nil {
		putPlanes(b.Target[i*hw:(i+1)*hw], r.s.Target, 1)
	}
	b.Names = append(b.Names, l.src.Name(r.index))
	b.Indices = append(b.Indices, r.index)
}

// Next returns the epoch's next batch, io.EOF after the last one, or the error
// that stopped the epoch (a bad image under the fail policy, or the context's
// cancellation).
func (e *Epoch) Next() (*Batch, error) {
	if e.err != nil {
		return nil, e.err
	}
	if err := e.ctx.Err(); err != nil {
		e.err = fmt.Errorf("data: epoch %d: %w", e.epoch, err)
		return nil, e.err
	}
	it, ok := <-e.out
	switch {
	case !ok && e.ctx.Err() != nil:
		e.err = fmt.Errorf("data: epoch %d: %w", e.epoch, e.ctx.Err())
	case !ok:
		e.err = io.EOF
	case it.err != nil:
		e.err = it.err
	default:
		return it.b, nil
	}
	return nil, e.err
}

// Close stops the epoch's goroutines and waits for them. It is safe to call
// more than once.
func (e *Epoch) Close() {
	e.cancel()
	e.wg.Wait()
	if e.err == nil {
		e.err = errors.New("data: epoch closed")
	}
}
