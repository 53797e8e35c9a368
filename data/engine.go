package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// This file is the machinery shared by Loader (pre-training views) and
// LabeledLoader (fine-tuning examples): worker goroutines load and transform
// samples ahead of the consumer; a single collector puts them back in
// permutation order, applies the bad-image policy and packs them into batches,
// so a batch depends only on (seed, epoch, position), never on the number of
// workers or their timing.
//
// Memory is bounded: at most batch+2·workers loaded samples are in flight,
// plus the batch being packed and prefetch finished batches in the queue.

// packer builds batches of type B from samples of type S for one loader.
type packer[S, B any] struct {
	n        int                               // images in the source
	name     func(index int) string            // Source.Name
	load     func(epoch, index int) (S, error) // load and transform one sample
	newBatch func(epoch, number int) B         // an empty batch
	add      func(b B, index int, s S) int     // append a sample; returns the batch's new size
	finish   func(b B, skipped []Skip, next Position, size int, partial bool)
	batch    int
	seed     uint64
	shuffle  bool
	dropLast bool
	rank     int // WithShard: this process's blocks of the order
	world    int
	workers  int
	prefetch int
	failFast bool // bad_images: fail
	// maxSkipped is how many images one epoch may skip (skip policy); one
	// more stops the epoch with an error saying how many were skipped.
	maxSkipped int

	mu      sync.Mutex
	skipped []Skip
}

// skips returns every image skipped so far, in the order met.
func (p *packer[S, B]) skips() []Skip {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Skip(nil), p.skipped...)
}

// stream is one epoch in progress.
type stream[B any] struct {
	out    chan streamItem[B]
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
	epoch  int
}

type streamItem[B any] struct {
	b   B
	err error
}

type sampleResult[S any] struct {
	pos, index int
	s          S
	err        error
}

// run starts epoch number epoch at position from.
func (p *packer[S, B]) run(ctx context.Context, epoch int, from Position) *stream[B] {
	ctx, cancel := context.WithCancel(ctx)
	e := &stream[B]{out: make(chan streamItem[B], p.prefetch), ctx: ctx, cancel: cancel, epoch: epoch}
	// work stops the goroutines; it ends with ctx or when the collector returns
	// (end of epoch, or an error under the fail policy), so nothing is left
	// running even if the caller forgets Close.
	work, stopWork := context.WithCancel(ctx)
	order := shard(Order(p.seed, epoch, p.n, p.shuffle), p.batch, p.rank, p.world)
	n := len(order)
	start := min(max(from.Sample, 0), n)
	window := p.batch + 2*p.workers
	tokens := make(chan struct{}, window) // one per dispatched, not yet collected sample
	jobs := make(chan int, window)
	results := make(chan sampleResult[S], window)

	e.wg.Add(2 + p.workers)
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
	workersWG.Add(p.workers)
	for range p.workers {
		go func() {
			defer e.wg.Done()
			defer workersWG.Done()
			for pos := range jobs {
				if work.Err() != nil {
					continue
				}
				s, err := p.sample(epoch, order[pos])
				results <- sampleResult[S]{pos: pos, index: order[pos], s: s, err: err} // never blocks, as above
			}
		}()
	}
	go func() { workersWG.Wait(); close(results) }()
	go func() { // collector
		defer e.wg.Done()
		defer close(e.out)
		defer stopWork()
		p.collect(work, e, epoch, n, from.Batch, start, tokens, results)
	}()
	return e
}

// shard returns the positions of order that belong to rank: consecutive
// blocks of batch positions dealt to the world's ranks in turn (WithShard).
// Positions in a Position are positions in this list.
func shard(order []int, batch, rank, world int) []int {
	if world <= 1 {
		return order
	}
	out := make([]int, 0, len(order)/world+batch)
	for start := rank * batch; start < len(order); start += world * batch {
		out = append(out, order[start:min(start+batch, len(order))]...)
	}
	return out
}

// sample loads one sample, turning a panic in a source into an error that
// names the image.
func (p *packer[S, B]) sample(epoch, index int) (s S, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("data: sample %s: panic: %v", p.name(index), r)
		}
	}()
	return p.load(epoch, index)
}

// collect receives samples, restores the epoch order, applies the bad-image
// policy and packs batches.
func (p *packer[S, B]) collect(ctx context.Context, e *stream[B], epoch, n, batchNo, start int, tokens chan struct{}, results chan sampleResult[S]) {
	send := func(it streamItem[B]) bool {
		select {
		case e.out <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	pending := make(map[int]sampleResult[S])
	var (
		cur     B
		open    bool
		size    int
		skipped []Skip
		nSkip   int // skipped in this epoch (since start)
		first   Skip
	)
	for next := start; next < n; {
		r, ok := pending[next]
		if !ok {
			select {
			case res, alive := <-results:
				if !alive {
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
		if !open {
			cur, open, size, skipped = p.newBatch(epoch, batchNo), true, 0, nil
		}
		if r.err != nil {
			if p.failFast {
				send(streamItem[B]{err: fmt.Errorf("data: epoch %d: %w (set data.bad_images: skip to skip bad images)", epoch, r.err)})
				return
			}
			sk := Skip{Name: p.name(r.index), Err: r.err}
			skipped = append(skipped, sk)
			p.mu.Lock()
			p.skipped = append(p.skipped, sk)
			p.mu.Unlock()
			if nSkip++; nSkip == 1 {
				first = sk
			}
			if nSkip > p.maxSkipped {
				send(streamItem[B]{err: &TooManySkippedError{Epoch: epoch, Skipped: nSkip, Read: next - start, Images: n, Allowed: p.maxSkipped, First: first}})
				return
			}
			continue
		}
		size = p.add(cur, r.index, r.s)
		if size == p.batch {
			p.finish(cur, skipped, Position{Batch: batchNo + 1, Sample: next}, size, false)
			if !send(streamItem[B]{b: cur}) {
				return
			}
			open, batchNo = false, batchNo+1
		}
	}
	if open && size > 0 && !p.dropLast {
		p.finish(cur, skipped, Position{Batch: batchNo + 1, Sample: n}, size, true)
		send(streamItem[B]{b: cur})
	}
}

// TooManySkippedError stops an epoch in which the skip policy left out more
// images than data.max_skipped_fraction allows.
type TooManySkippedError struct {
	Epoch   int
	Skipped int  // images skipped in the epoch so far
	Read    int  // images of the epoch looked at so far
	Images  int  // images in the source
	Allowed int  // the most one epoch may skip
	First   Skip // the first one skipped
}

func (e *TooManySkippedError) Error() string {
	return fmt.Sprintf("data: epoch %d: %d of the %d images read so far were unreadable and skipped, more than the %d that data.max_skipped_fraction allows for %d images; the first: %v "+
		"(fix or remove the files, check data.root and the lists, or raise data.max_skipped_fraction)", e.Epoch, e.Skipped, e.Read, e.Allowed, e.Images, e.First.Err)
}

// next returns the epoch's next batch, io.EOF after the last one, or the
// error that stopped the epoch.
func (e *stream[B]) next() (B, error) {
	var zero B
	if e.err != nil {
		return zero, e.err
	}
	if err := e.ctx.Err(); err != nil {
		e.err = fmt.Errorf("data: epoch %d: %w", e.epoch, err)
		return zero, e.err
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
	return zero, e.err
}

// close stops the epoch's goroutines and waits for them.
func (e *stream[B]) close() {
	e.cancel()
	e.wg.Wait()
	if e.err == nil {
		e.err = errors.New("data: epoch closed")
	}
}
