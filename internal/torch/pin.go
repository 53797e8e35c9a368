package torch

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
)

// libtorch keeps grad mode, and gotch its last-error slot, per OS thread,
// while Go moves goroutines between threads at will. A goroutine that does
// tensor work must therefore hold one thread for the whole of it: if it
// migrated between a gotch call and the read of that call's error, it would
// read another thread's slot; if it migrated inside a no-grad block, its ops
// would record gradients (seen: a test made the frozen key network require
// grad). Do pins the thread; every op helper of this package checks that its
// caller runs on a pinned thread, so a forgotten pin fails on the first op
// instead of once in a thousand runs.

// pinned counts, per OS thread id, the Do calls (and test pins) active on it.
// A thread locked by one goroutine runs no other, so finding the current
// thread here proves the current goroutine is the one that pinned it.
var pinned sync.Map // int (tid) -> int (depth); written only by the owning goroutine

// Do runs fn with the calling goroutine locked to its OS thread and that
// thread registered for tensor work. A libtorch error raised through Must or
// Check inside fn (and not caught nearer) is returned as an error; other
// panics pass through with their stack. Do calls may nest.
func Do(fn func() error) (err error) {
	unpin := Pin()
	defer unpin()
	defer Catch("", &err)
	return fn()
}

// Pin locks the calling goroutine to its OS thread and registers the thread
// for tensor work until the returned function is called (on the same
// goroutine). Prefer Do; Pin is for tests (torchtest.Pin) and for code whose
// whole goroutine is tensor work.
func Pin() (unpin func()) {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	depth, _ := pinned.Load(tid)
	d, _ := depth.(int)
	pinned.Store(tid, d+1)
	return func() {
		depth, _ := pinned.Load(tid)
		if d, _ := depth.(int); d > 1 {
			pinned.Store(tid, d-1)
		} else {
			pinned.Delete(tid)
		}
		// A failing test runs its parents' cleanups on its own goroutine:
		// the registration is dropped above, but only the goroutine that
		// locked the thread may unlock it.
		if syscall.Gettid() == tid {
			runtime.UnlockOSThread()
		}
	}
}

// Pinned reports whether the calling goroutine runs on a thread pinned by Do
// or Pin.
func Pinned() bool {
	_, ok := pinned.Load(syscall.Gettid())
	return ok
}

// ErrUnpinned is the panic value of tensor work on an unpinned goroutine.
var ErrUnpinned = fmt.Errorf("torch: tensor work on a goroutine without a pinned OS thread: run it inside torch.Do (tests: torchtest.Pin(t) first)")

// assertPinned panics with ErrUnpinned off a pinned thread. It is a bug in
// dira, not a libtorch error, so Catch does not turn it into an error.
func assertPinned() {
	if !Pinned() {
		panic(ErrUnpinned)
	}
}
