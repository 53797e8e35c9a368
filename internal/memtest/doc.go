// Package memtest measures how much memory a piece of test code takes at
// its peak, by running it again in a child process, which reports the peak
// resident set size of its address space (VmHWM in /proc/self/status) when
// the test ends.
//
// It exists for the tests that feed hostile files to dira's readers (a
// pickle that declares a storage of 10^10 elements, an npy header with a
// huge shape, a zip bomb): such a file must be refused before anything is
// allocated from the sizes it declares, and the only honest way to check
// that is to watch a process's peak memory while it refuses the file. The
// child runs under an address-space limit, so a reader that does allocate
// from the declared size fails in the child instead of taking the machine's
// memory.
//
// It owns the child's set-up and the measurement; it does not know what the
// test code does (each test checks its own error in the child). Linux only.
package memtest
