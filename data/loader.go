package data

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// Loader turns a Source into batches of training tensors. Worker goroutines
// load and augment samples ahead of the consumer; a single collector puts them
// back in permutation order and packs them into batches, so a batch depends only
// on (seed, epoch, position), never on the number of workers or their timing.
//
// Memory is bounded: at most batch+2·workers decoded samples are in flight,
// plus the batch being packed and Prefetch finished batches in the queue.
type Loader struct {
	src  Source
	cfg  Config
	opts loaderOptions
	pool sync.Pool // *batchBuffers
	p    *packer[Sample, *Batch]
}

// loaderOptions are the settings an Option changes.
type loaderOptions struct {
	shuffle, dropLast bool
	rank, world       int // WithShard; world 0 or 1 reads everything
}

// Option changes a Loader or LabeledLoader default.
type Option func(*loaderOptions)

// WithShuffle sets whether each epoch visits the images in a permutation drawn
// from (seed, epoch) (default true) or in source order.
func WithShuffle(on bool) Option { return func(o *loaderOptions) { o.shuffle = on } }

// WithDropLast sets whether an epoch's last, incomplete batch is dropped
// (default true, as in the official loaders).
func WithDropLast(on bool) Option { return func(o *loaderOptions) { o.dropLast = on } }

// WithShard makes the loader read one process's share of every epoch, for
// data-parallel training over world processes (default: the whole epoch, as
// one process). The epoch's order is dealt to the ranks in blocks of one
// batch: rank r takes blocks r, r+world, r+2*world, ... So when no image is
// skipped, batch i of rank r is slice r of batch i of a single loader whose
// batch is world times larger, and the ranks' batches i together are exactly
// that batch, in rank order. A skipped image is replaced by the next one of
// the rank's own blocks, so no two ranks read the same image in an epoch.
//
// PyTorch's DistributedSampler deals the order one position at a time
// instead (rank r takes positions r, r+world, ...). Over a uniformly random
// order both deals give every rank a uniformly random share of the same size;
// dealing whole blocks keeps each global batch the same set of images as a
// single process's batch, which lets a run of world processes be compared
// step by step with one process. A sharded loader drops the last incomplete
// batch, as the official loaders do (WithDropLast(false) is refused).
func WithShard(rank, world int) Option {
	return func(o *loaderOptions) { o.rank, o.world = rank, world }
}

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
	l := &Loader{src: src, cfg: cfg, opts: loaderOptions{shuffle: true, dropLast: true}}
	for _, o := range opts {
		o(&l.opts)
	}
	if err := l.opts.checkShard(); err != nil {
		return nil, err
	}
	l.p = &packer[Sample, *Batch]{
		n:        src.Len(),
		name:     src.Name,
		load:     l.sample,
		newBatch: l.newBatch,
		add:      l.add,
		finish:   l.finish,
		batch:    batchSize,
		seed:     seed,
		shuffle:  l.opts.shuffle,
		dropLast: l.opts.dropLast,
		rank:     l.opts.rank,
		world:    l.opts.world,
		workers:  cfg.Workers,
		prefetch: cfg.Prefetch,
		failFast: cfg.BadImages == BadImagesFail,
		// The fraction is of the source's images, so a stricter limit
		// never needs more than one epoch to be reached.
		maxSkipped: int(math.Floor(cfg.MaxSkippedFraction * float64(src.Len()))),
	}
	return l, nil
}

// BatchesPerEpoch is the number of batches in an epoch when no image is
// skipped. For a sharded loader it is the number of batches every rank has
// (the number of whole batches of world times the batch size).
func (l *Loader) BatchesPerEpoch() int {
	return batchesPerEpoch(l.src.Len(), l.p.batch*max(l.opts.world, 1), l.opts.dropLast)
}

func (o loaderOptions) checkShard() error {
	switch {
	case o.world < 0 || (o.world > 0 && (o.rank < 0 || o.rank >= o.world)):
		return fmt.Errorf("data: loader: shard %d of %d: want 0 <= rank < world", o.rank, o.world)
	case o.world > 1 && !o.dropLast:
		return errors.New("data: loader: a sharded loader drops the last incomplete batch (WithDropLast(false) with WithShard)")
	}
	return nil
}

func batchesPerEpoch(n, batch int, dropLast bool) int {
	if dropLast {
		return n / batch
	}
	return (n + batch - 1) / batch
}

// Skip is a bad image that the skip policy left out.
type Skip struct {
	Name string
	Err  error
}

// Skipped returns every image skipped so far, over all epochs, in the order met.
func (l *Loader) Skipped() []Skip { return l.p.skips() }

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
// position in the epoch's order of the next image to read (in a sharded
// loader's own share of the order).
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
type Epoch struct{ s *stream[*Batch] }

// Epoch starts epoch number epoch from its beginning.
func (l *Loader) Epoch(ctx context.Context, epoch int) *Epoch {
	return l.EpochFrom(ctx, epoch, Position{})
}

// EpochFrom starts epoch number epoch at position from, which is a Batch.Next of
// an earlier run of the same epoch (resuming an interrupted run) or the zero
// Position.
func (l *Loader) EpochFrom(ctx context.Context, epoch int, from Position) *Epoch {
	return &Epoch{l.p.run(ctx, epoch, from)}
}

// sample loads and augments one image.
func (l *Loader) sample(epoch, index int) (Sample, error) {
	img, err := l.src.Load(index)
	if err != nil {
		return Sample{}, err
	}
	return MakeSample(SampleRNG(l.p.seed, epoch, index), img, l.cfg.ImageSize, l.cfg.Augment, l.cfg.Restoration), nil
}

func (l *Loader) newBatch(epoch, index int) *Batch {
	s := l.cfg.ImageSize
	hw := s * s
	buf, _ := l.pool.Get().(*batchBuffers)
	if buf == nil {
		buf = &batchBuffers{q: make([]float32, l.p.batch*3*hw), k: make([]float32, l.p.batch*3*hw)}
		if l.cfg.Restoration {
			buf.t = make([]float32, l.p.batch*hw)
		}
	}
	return &Batch{
		Epoch: epoch, Index: index, N: l.p.batch, H: s, W: s,
		Query: buf.q, Key: buf.k, Target: buf.t,
		buf: buf, pool: &l.pool,
	}
}

func (l *Loader) add(b *Batch, index int, s Sample) int {
	i := len(b.Names)
	hw := b.H * b.W
	putPlanes(b.Query[i*3*hw:(i+1)*3*hw], s.Query, 3)
	putPlanes(b.Key[i*3*hw:(i+1)*3*hw], s.Key, 3)
	if b.Target != nil {
		putPlanes(b.Target[i*hw:(i+1)*hw], s.Target, 1)
	}
	b.Names = append(b.Names, l.src.Name(index))
	b.Indices = append(b.Indices, index)
	return len(b.Names)
}

func (l *Loader) finish(b *Batch, skipped []Skip, next Position, size int, partial bool) {
	b.Skipped, b.Next = skipped, next
	if partial {
		b.N = size
		hw := b.H * b.W
		b.Query, b.Key = b.Query[:size*3*hw], b.Key[:size*3*hw]
		if b.Target != nil {
			b.Target = b.Target[:size*hw]
		}
	}
}

// Next returns the epoch's next batch, io.EOF after the last one, or the error
// that stopped the epoch (a bad image under the fail policy, or the context's
// cancellation).
func (e *Epoch) Next() (*Batch, error) { return e.s.next() }

// Close stops the epoch's goroutines and waits for them. It is safe to call
// more than once.
func (e *Epoch) Close() { e.s.close() }
