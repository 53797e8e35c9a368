package dist

// #cgo CXXFLAGS: -std=c++17 -DUSE_C10D_GLOO -I${SRCDIR}/include
// #cgo LDFLAGS: -ltorch_cpu -lc10 -lstdc++
// #include <stdlib.h>
// #include "c10d.h"
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// Backends.
const (
	Gloo = "gloo" // CPU tensors; part of every libtorch this package links
	NCCL = "nccl" // CUDA tensors; only in a libtorch built with NCCL (build tag nccl)
)

// DefaultTimeout is PyTorch's default process-group timeout (30 minutes).
const DefaultTimeout = 30 * time.Minute

// BroadcastBucketBytes is DDP's bucket size for its parameter and buffer
// broadcasts (PyTorch 1.13: 250 MiB).
const BroadcastBucketBytes = 250 << 20

var (
	// ErrTimeout marks an operation that ran past the group's timeout, most
	// often because another rank did not join it.
	ErrTimeout = errors.New("timed out")
	// ErrPeerLost marks an operation that failed because a connection to
	// another rank closed (the process died or closed its group).
	ErrPeerLost = errors.New("peer lost")
)

// Capabilities says what the linked libtorch provides.
type Capabilities struct {
	Gloo        bool // ProcessGroupGloo (always true: this package does not link without it)
	NCCL        bool // ProcessGroupNCCL: only with build tag nccl on a libtorch built with NCCL
	CUDA        bool // a usable CUDA device
	CUDADevices int  // how many (torch::cuda::device_count)
	CuDNN       bool // cuDNN is loaded (torch::cuda::cudnn_is_available)
}

// String is "gloo yes, nccl no, cuda no (0 devices), cudnn no".
func (c Capabilities) String() string {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprintf("gloo %s, nccl %s, cuda %s (%d devices), cudnn %s", yes(c.Gloo), yes(c.NCCL), yes(c.CUDA), c.CUDADevices, yes(c.CuDNN))
}

// Available reports the backends and devices of the linked libtorch.
func Available() Capabilities {
	var g, n, c, devices, cudnn C.int
	C.dira_dist_available(&g, &n, &c, &devices, &cudnn)
	return Capabilities{Gloo: g != 0, NCCL: n != 0, CUDA: c != 0, CUDADevices: int(devices), CuDNN: cudnn != 0}
}

// Config describes one process's place in a process group and where the
// group meets. Env.Config fills it from a launcher's environment.
type Config struct {
	Backend    string        // Gloo (default when empty) or NCCL
	Addr       string        // host of the TCPStore (MASTER_ADDR)
	Port       int           // port of the TCPStore (MASTER_PORT)
	Rank       int           // this process, 0 <= Rank < WorldSize
	WorldSize  int           // number of processes
	ServeStore bool          // this process hosts the TCPStore (rank 0 unless a launcher agent does)
	Prefix     string        // key prefix in the store ("/worker/attempt_N" under torchrun's agent)
	Timeout    time.Duration // for the rendezvous and each collective; 0 = DefaultTimeout
	Interfaces []string      // network interfaces for Gloo (GLOO_SOCKET_IFNAME); empty = this host's name
}

func (c Config) validate() error {
	var errs []error
	if c.Backend != Gloo && c.Backend != NCCL {
		errs = append(errs, fmt.Errorf("backend must be %q or %q, got %q", Gloo, NCCL, c.Backend))
	}
	if c.Addr == "" {
		errs = append(errs, errors.New("store address is empty"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("store port must be in 1..65535, got %d", c.Port))
	}
	if c.WorldSize < 1 {
		errs = append(errs, fmt.Errorf("world size must be >= 1, got %d", c.WorldSize))
	} else if c.Rank < 0 || c.Rank >= c.WorldSize {
		errs = append(errs, fmt.Errorf("rank must be in 0..%d, got %d", c.WorldSize-1, c.Rank))
	}
	if c.Timeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("timeout must be >= 1ms, got %v", c.Timeout))
	}
	for _, name := range c.Interfaces {
		if name == "" || strings.Contains(name, ",") {
			errs = append(errs, fmt.Errorf("bad network interface name %q", name))
		}
	}
	return errors.Join(errs...)
}

// Group is a c10d process group: one per process, shared by every collective
// and GradSync of a training run. Collectives are matched across processes by
// the order in which they are called, so every rank must call the same ones
// in the same order, from one goroutine at a time.
type Group struct {
	g       *C.dira_dist_group
	rank    int
	size    int
	timeout time.Duration
}

// New joins the process group cfg describes. It returns once every rank has
// joined, or with an error after cfg.Timeout. The store keys and the closing
// store barrier are torch.distributed.init_process_group's, so Python ranks
// that call init_process_group on the same store join the same group.
func New(cfg Config) (*Group, error) {
	if cfg.Backend == "" {
		cfg.Backend = Gloo
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("dist: config: %w", err)
	}
	backend := C.int(C.DIRA_DIST_GLOO)
	if cfg.Backend == NCCL {
		if !Available().NCCL {
			return nil, errors.New("dist: nccl is not available: the linked libtorch was built without it (or the nccl build tag is missing); use gloo")
		}
		backend = C.DIRA_DIST_NCCL
	}
	host, prefix := C.CString(cfg.Addr), C.CString(cfg.Prefix)
	ifnames := C.CString(strings.Join(cfg.Interfaces, ","))
	defer C.free(unsafe.Pointer(host))
	defer C.free(unsafe.Pointer(prefix))
	defer C.free(unsafe.Pointer(ifnames))
	serve := C.int(0)
	if cfg.ServeStore {
		serve = 1
	}
	var cerr *C.char
	g := C.dira_dist_new(backend, host, C.int(cfg.Port), C.int(cfg.Rank), C.int(cfg.WorldSize),
		serve, prefix, C.int64_t(cfg.Timeout.Milliseconds()), ifnames, &cerr)
	if g == nil {
		return nil, fmt.Errorf("dist: join %s group at %s:%d as rank %d of %d: %w",
			cfg.Backend, cfg.Addr, cfg.Port, cfg.Rank, cfg.WorldSize, cause(cerr))
	}
	return &Group{g: g, rank: cfg.Rank, size: cfg.WorldSize, timeout: cfg.Timeout}, nil
}

// Rank is this process's rank.
func (g *Group) Rank() int { return g.rank }

// Size is the world size.
func (g *Group) Size() int { return g.size }

// Timeout is the group's timeout.
func (g *Group) Timeout() time.Duration { return g.timeout }

// Close leaves the group. It waits for operations still queued (each ends
// within the timeout); a GradSync made from g keeps the group's resources
// until it is closed too.
func (g *Group) Close() {
	if g.g != nil {
		C.dira_dist_free(g.g)
		g.g = nil
	}
}

// cause turns the shim's message into an error (see classify).
func cause(cerr *C.char) error {
	msg := C.GoString(cerr)
	C.free(unsafe.Pointer(cerr))
	return classify(msg)
}

// classify marks timeouts and lost peers for errors.Is. Gloo prefixes its
// messages with its source location ("[.../gloo/transport/tcp/pair.cc:589]
// Read error [127.0.0.1]:5024: Connection reset by peer"); the location is
// dropped, the peer's address kept.
func classify(msg string) error {
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "[") {
		if loc, rest, ok := strings.Cut(msg, "] "); ok && strings.Contains(loc, ":") && !strings.Contains(loc, " ") {
			msg = rest
		}
	}
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "timed out") || strings.Contains(lower, "timeout"):
		return fmt.Errorf("%w: %s", ErrTimeout, msg)
	case strings.Contains(lower, "closed by peer") || strings.Contains(lower, "reset by peer") ||
		strings.Contains(lower, "broken pipe") || strings.Contains(lower, "connection refused"):
		return fmt.Errorf("%w: %s", ErrPeerLost, msg)
	}
	return errors.New(msg)
}

// fail names the operation, the rank and the timeout in a collective's
// error, and the ranks that are gone (see lost).
func (g *Group) fail(op string, cerr *C.char) error {
	err := cause(cerr)
	return fmt.Errorf("dist: %s (rank %d of %d, timeout %v): %w%s", op, g.rank, g.size, g.timeout, err, g.lost(err))
}

// lost explains a lost peer or a timeout by the ranks that are gone. Every
// rank's group beats in the store (a counter per rank, from a thread of its
// own, also while the rank waits in a collective); lost waits three beats
// and names the ranks whose counter stood still. Gloo's own message names a
// socket address, which says nothing about the rank behind it. It returns
// "" for other errors.
func (g *Group) lost(err error) string {
	if g.g == nil || g.size < 2 || !(errors.Is(err, ErrPeerLost) || errors.Is(err, ErrTimeout)) {
		return ""
	}
	ranks := make([]C.int, 8)
	var window C.int64_t
	var cerr *C.char
	n := int(C.dira_dist_lost(g.g, &ranks[0], C.int(len(ranks)), &window, &cerr))
	if n < 0 {
		return fmt.Sprintf("; the rendezvous store cannot be reached either (%v): the process that hosts it (rank 0, or the launcher's agent) is gone", cause(cerr))
	}
	w := time.Duration(window) * time.Millisecond
	if n == 0 {
		return fmt.Sprintf("; every other rank is still alive (heartbeats within %v): one is slow or stuck", w)
	}
	var names []string
	for _, r := range ranks[:min(n, len(ranks))] {
		names = append(names, fmt.Sprint(r))
	}
	if n > len(ranks) {
		names = append(names, fmt.Sprintf("and %d more", n-len(ranks)))
	}
	what := "rank " + names[0] + " is"
	if n > 1 {
		what = "ranks " + strings.Join(names, ", ") + " are"
	}
	return fmt.Sprintf("; %s lost (no heartbeat for %v)", what, w)
}

func (g *Group) check(op string, ts ...*ts.Tensor) error {
	if g.g == nil {
		return fmt.Errorf("dist: %s: group is closed", op)
	}
	for i, t := range ts {
		if t == nil {
			return fmt.Errorf("dist: %s: tensor %d is nil", op, i)
		}
	}
	return nil
}

// handles copies tensor handles into C memory (cgo may not keep Go pointers
// inside memory passed to C). The caller frees the result.
func handles(list []*ts.Tensor) *unsafe.Pointer {
	size := C.size_t(max(len(list), 1)) * C.size_t(unsafe.Sizeof(uintptr(0)))
	arr := unsafe.Slice((*unsafe.Pointer)(C.malloc(size)), max(len(list), 1))
	for i, t := range list {
		arr[i] = t.Ctensor()
	}
	return &arr[0]
}

// Op is a reduction operator.
type Op int

// Reduction operators. Gloo has no average; AllreduceMean divides the sum.
const (
	Sum Op = C.DIRA_DIST_SUM
	Max Op = C.DIRA_DIST_MAX
	Min Op = C.DIRA_DIST_MIN
)

// Allreduce replaces t, on every rank, by op over all ranks' t (in place).
func (g *Group) Allreduce(t *ts.Tensor, op Op) error {
	if err := g.check("allreduce", t); err != nil {
		return err
	}
	var cerr *C.char
	if C.dira_dist_allreduce(g.g, t.Ctensor(), C.int(op), &cerr) != 0 {
		return g.fail("allreduce", cerr)
	}
	return nil
}

// AllreduceMean replaces each tensor, on every rank, by its average over all
// ranks, in one collective over the tensors flattened into one buffer. The
// tensors must share a floating-point dtype and a device; shapes may differ.
func (g *Group) AllreduceMean(list []*ts.Tensor) error {
	if err := g.check("allreduce mean", list...); err != nil || len(list) == 0 {
		return err
	}
	hs := handles(list)
	defer C.free(unsafe.Pointer(hs))
	var cerr *C.char
	if C.dira_dist_allreduce_mean(g.g, hs, C.int(len(list)), &cerr) != 0 {
		return g.fail("allreduce mean", cerr)
	}
	return nil
}

// Allgather returns every rank's t concatenated on dim 0 in rank order, a
// new tensor the caller drops (MoCo's concat_all_gather). t must have the
// same shape and dtype on every rank; a 0-d t is gathered as shape [1].
func (g *Group) Allgather(t *ts.Tensor) (*ts.Tensor, error) {
	if err := g.check("allgather", t); err != nil {
		return nil, err
	}
	var cerr *C.char
	out := C.dira_dist_allgather(g.g, t.Ctensor(), &cerr)
	if out == nil {
		return nil, g.fail("allgather", cerr)
	}
	return ts.FromCtensor(out), nil
}

// Broadcast overwrites the tensors on every rank with root's, without
// recording autograd. Tensors are grouped by dtype (in order of first
// appearance) and each group is sent in buckets of up to
// BroadcastBucketBytes, one collective per bucket, as DDP's
// _broadcast_coalesced does. It is DDP's initial parameter sync and, with
// the buffers, its per-step buffer broadcast (broadcast_buffers=True).
func (g *Group) Broadcast(list []*ts.Tensor, root int) error {
	return g.BroadcastBuckets(list, root, BroadcastBucketBytes)
}

// BroadcastBuckets is Broadcast with a chosen bucket size in bytes.
func (g *Group) BroadcastBuckets(list []*ts.Tensor, root int, bucketBytes int64) error {
	if err := g.check("broadcast", list...); err != nil || len(list) == 0 {
		return err
	}
	if root < 0 || root >= g.size {
		return fmt.Errorf("dist: broadcast: root %d is not a rank of a group of %d", root, g.size)
	}
	if bucketBytes < 1 {
		return fmt.Errorf("dist: broadcast: bucket size must be >= 1 byte, got %d", bucketBytes)
	}
	hs := handles(list)
	defer C.free(unsafe.Pointer(hs))
	var cerr *C.char
	if C.dira_dist_broadcast(g.g, hs, C.int(len(list)), C.int(root), C.int64_t(bucketBytes), &cerr) != 0 {
		return g.fail(fmt.Sprintf("broadcast from rank %d", root), cerr)
	}
	return nil
}

// ReduceSum sums t over all ranks into root's t. On the other ranks t is
// used as scratch space: its contents afterwards are unspecified.
func (g *Group) ReduceSum(t *ts.Tensor, root int) error {
	if err := g.check("reduce", t); err != nil {
		return err
	}
	if root < 0 || root >= g.size {
		return fmt.Errorf("dist: reduce: root %d is not a rank of a group of %d", root, g.size)
	}
	var cerr *C.char
	if C.dira_dist_reduce(g.g, t.Ctensor(), C.int(root), &cerr) != 0 {
		return g.fail(fmt.Sprintf("reduce to rank %d", root), cerr)
	}
	return nil
}

// Barrier returns once every rank has called it.
func (g *Group) Barrier() error {
	if err := g.check("barrier"); err != nil {
		return err
	}
	var cerr *C.char
	if C.dira_dist_barrier(g.g, &cerr) != 0 {
		return g.fail("barrier", cerr)
	}
	return nil
}
