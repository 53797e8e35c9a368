package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a command has to stop by itself after SIGINT or
// SIGTERM before the process exits anyway. A command checks for the
// signal between steps and images; one busy inside a long libtorch call
// or a read stuck in the kernel cannot, and is not waited for.
const stopGrace = 5 * time.Second

// exitInterrupted is the exit status of an interrupted command (128 +
// SIGINT, as shells report it).
const exitInterrupted = 130

// interrupts turns SIGINT and SIGTERM into the cancellation of a context
// that every command runs under. The first signal cancels it and says so;
// if the command has not returned stopGrace later, or at a second signal,
// the process exits with status 130. Files are written atomically, so an
// exit at any moment leaves no partial file under a final name, only
// temporary ones that the next `dira run` of the folder removes.
type interrupts struct {
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan os.Signal
	done   chan struct{}
	stderr io.Writer
	grace  time.Duration
	exit   func(int)

	mu   sync.Mutex
	sig  os.Signal
	hint string // said before a forced exit (how to resume)
}

type interruptsKey struct{}

// context is the commands' context, which also carries in.
func (in *interrupts) context() context.Context {
	return context.WithValue(in.ctx, interruptsKey{}, in)
}

// setExitHint makes a forced exit (the command did not stop in time) say
// hint, e.g. how to resume. ctx is a command's context.
func setExitHint(ctx context.Context, hint string) {
	if in, ok := ctx.Value(interruptsKey{}).(*interrupts); ok {
		in.mu.Lock()
		in.hint = hint
		in.mu.Unlock()
	}
}

// catchInterrupts starts watching for SIGINT and SIGTERM; stop ends it.
func catchInterrupts(stderr io.Writer, grace time.Duration, exit func(int)) *interrupts {
	ctx, cancel := context.WithCancel(context.Background())
	in := &interrupts{ctx: ctx, cancel: cancel, ch: make(chan os.Signal, 2), done: make(chan struct{}),
		stderr: stderr, grace: grace, exit: exit}
	signal.Notify(in.ch, os.Interrupt, syscall.SIGTERM)
	go in.watch()
	return in
}

func (in *interrupts) watch() {
	var s os.Signal
	select {
	case s = <-in.ch:
	case <-in.done:
		return
	}
	in.mu.Lock()
	in.sig = s
	in.mu.Unlock()
	fmt.Fprintf(in.stderr, "\ndira: %s: stopping (send it again to exit at once)\n", signalName(s))
	in.cancel()
	t := time.NewTimer(in.grace)
	defer t.Stop()
	why := ""
	select {
	case <-in.done:
		return
	case s = <-in.ch:
		why = "second " + signalName(s)
	case <-t.C:
		why = fmt.Sprintf("still busy %v after the signal", in.grace)
	}
	fmt.Fprintf(in.stderr, "dira: %s: exiting now; no file is left half-written (temporary files are removed by the next run of the folder)\n", why)
	in.mu.Lock()
	if in.hint != "" {
		fmt.Fprintf(in.stderr, "dira: %s\n", in.hint)
	}
	in.mu.Unlock()
	in.exit(exitInterrupted)
}

// signal is the signal received, nil if none.
func (in *interrupts) signal() os.Signal {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.sig
}

// stop stops watching; the context is cancelled.
func (in *interrupts) stop() {
	signal.Stop(in.ch)
	close(in.done)
	in.cancel()
}

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}
