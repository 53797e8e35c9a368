package dist

// #include <stdlib.h>
// #include "c10d.h"
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// DefaultBucketBytes is DDP's gradient bucket size (bucket_cap_mb=25).
const DefaultBucketBytes = 25 << 20

// GradSync averages the gradients of a set of parameters over a Group while
// backward runs, with c10d's Reducer, the engine of PyTorch's
// DistributedDataParallel: gradients are copied (already divided by the world
// size) into buckets, and each bucket is all-reduced as soon as backward has
// produced all of its gradients, so communication overlaps the rest of
// backward. Backward ends by waiting for every bucket and writing the averages
// into the parameters' .grad.
//
// Bucketing follows DDP 1.13 with find_unused_parameters=False: the first
// step reduces all gradients in one bucket; from the second step on, buckets
// follow the order in which the first step's gradients arrived, a first
// bucket of at most min(1 MiB, bucketBytes) and then buckets of about
// bucketBytes.
//
// Per step, on every rank:
//
//	s.Prepare()      // before backward (DDP does it in forward)
//	loss.Backward()  // buckets are reduced during backward
//	s.Wait()         // checks every parameter got its gradient
//
// or s.Backward(loss), which does the three and names a failed reduction.
//
// Without Prepare, a backward leaves the gradients local (DDP's no_sync), so
// two GradSyncs over disjoint parameters (the U-Net and the discriminator) can
// share one Group. Every parameter must receive a gradient in each prepared
// backward (DDP with find_unused_parameters=False). As in DDP, the initial
// parameter values and the buffers are not synchronised here: Broadcast them.
//
// GradSync must be used from the goroutine that runs backward, holding its OS
// thread as all gotch code does.
type GradSync struct {
	r        *C.dira_dist_reducer
	g        *Group
	shapes   [][]int64
	prepared bool
}

// NewGradSync makes a GradSync for params (leaf tensors that require grad,
// the same shapes in the same order on every rank; a collective checks that).
// bucketBytes <= 0 means DefaultBucketBytes.
func NewGradSync(g *Group, params []*ts.Tensor, bucketBytes int64) (*GradSync, error) {
	if err := g.check("grad sync", params...); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, errors.New("dist: grad sync: no parameters")
	}
	if bucketBytes <= 0 {
		bucketBytes = DefaultBucketBytes
	}
	shapes := make([][]int64, len(params))
	for i, p := range params {
		s, err := shapeOf(p)
		if err != nil {
			return nil, fmt.Errorf("dist: grad sync: parameter %d: %w", i, err)
		}
		shapes[i] = s
	}
	hs := handles(params)
	defer C.free(unsafe.Pointer(hs))
	var cerr *C.char
	r := C.dira_dist_reducer_new(g.g, hs, C.int(len(params)), C.int64_t(bucketBytes), &cerr)
	if r == nil {
		return nil, g.fail("grad sync setup", cerr)
	}
	return &GradSync{r: r, g: g, shapes: shapes}, nil
}

// Buckets is the number of gradient buckets.
func (s *GradSync) Buckets() int { return int(C.dira_dist_reducer_buckets(s.r)) }

// Prepare arms the next backward to average the gradients. At the second
// step it re-buckets the parameters by the order in which the first step's
// gradients arrived (rank 0's order, broadcast), as DDP's forward does.
func (s *GradSync) Prepare() error {
	if s.r == nil {
		return errors.New("dist: grad sync: closed")
	}
	var cerr *C.char
	if C.dira_dist_reducer_prepare(s.r, &cerr) != 0 {
		return s.g.fail("grad sync prepare", cerr)
	}
	s.prepared = true
	return nil
}

// Wait ends a prepared step. Backward has already waited for the buckets
// (a failed reduction makes Backward itself return the error); Wait reports
// parameters that received no gradient, which left their buckets unreduced
// and the GradSync unusable. After Wait returns nil, every parameter's .grad
// holds the average over the ranks of their own gradients.
func (s *GradSync) Wait() error {
	if s.r == nil {
		return errors.New("dist: grad sync: closed")
	}
	if !s.prepared {
		return errors.New("dist: grad sync: Wait without Prepare")
	}
	s.prepared = false
	missing := make([]C.int, 8)
	n := int(C.dira_dist_reducer_finish(s.r, &missing[0], C.int(len(missing))))
	if n == 0 {
		return nil
	}
	var names []string
	for _, i := range missing[:min(n, len(missing))] {
		names = append(names, fmt.Sprintf("%d %v", i, s.shapes[i]))
	}
	if n > len(missing) {
		names = append(names, fmt.Sprintf("and %d more", n-len(missing)))
	}
	return fmt.Errorf("dist: grad sync (rank %d of %d): %d of %d parameters got no gradient in this backward (index and shape: %s); every parameter must be used in each synchronised step",
		s.g.rank, s.g.size, n, len(s.shapes), strings.Join(names, ", "))
}

// Backward is one synchronised backward: Prepare, loss.Backward(), Wait.
// A reduction that fails inside backward (a lost peer, a timeout) is
// reported as a grad sync error marked ErrPeerLost or ErrTimeout; the
// GradSync and its Group are unusable after it.
func (s *GradSync) Backward(loss *ts.Tensor) error {
	if err := s.Prepare(); err != nil {
		return err
	}
	if err := loss.Backward(); err != nil {
		s.prepared = false
		// gotch prefixes libtorch's message with "Libtorch API Error: ".
		msg := strings.TrimPrefix(err.Error(), "Libtorch API Error: ")
		cause := classify(msg)
		return fmt.Errorf("dist: grad sync backward (rank %d of %d, timeout %v): %w%s", s.g.rank, s.g.size, s.g.timeout, cause, s.g.lost(cause))
	}
	return s.Wait()
}

// Close removes the autograd hooks and frees the Reducer.
func (s *GradSync) Close() {
	if s.r != nil {
		C.dira_dist_reducer_free(s.r)
		s.r = nil
	}
}

// AllreduceGrads averages the parameters' gradients over the group in one
// collective after backward (no overlap: the comparison point for GradSync).
// Every parameter must have a gradient.
func (g *Group) AllreduceGrads(params []*ts.Tensor) error {
	if err := g.check("allreduce grads", params...); err != nil || len(params) == 0 {
		return err
	}
	hs := handles(params)
	defer C.free(unsafe.Pointer(hs))
	var cerr *C.char
	if C.dira_dist_allreduce_grads(g.g, hs, C.int(len(params)), &cerr) != 0 {
		return g.fail("allreduce grads", cerr)
	}
	return nil
}

// shapeOf is p's shape, with a libtorch error returned rather than ending the
// process (gotch's Size can exit).
func shapeOf(p *ts.Tensor) (s []int64, err error) {
	defer torch.Catch("shape", &err)
	return torch.Size(p), nil
}
