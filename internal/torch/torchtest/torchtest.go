// Package torchtest is the one way tests do tensor work: Pin holds the test
// goroutine's OS thread for libtorch (see internal/torch's Do) until the test
// ends. A tensor test that forgets it fails on its first op with
// torch.ErrUnpinned.
package torchtest

import (
	"testing"

	"dira/internal/torch"
)

// Pin locks the calling test goroutine to its OS thread and registers the
// thread for tensor work until t's cleanup. Call it first in every test or
// subtest that touches tensors (subtests run on goroutines of their own).
func Pin(t testing.TB) {
	t.Helper()
	unpin := torch.Pin()
	t.Cleanup(unpin)
}
