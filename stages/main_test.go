package stages

import (
	"os"
	"testing"

	"dira/internal/torch"
)

// TestMain runs the package's tests with the 2 libtorch threads the test
// configs ask for (run.threads), as `dira run` would set them.
func TestMain(m *testing.M) {
	torch.SetThreads(2)
	os.Exit(m.Run())
}
