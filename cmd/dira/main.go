// Command dira pre-trains a U-Net with DiRA (discriminative, restorative and
// adversarial self-supervised learning) from one YAML file, exports the encoder
// and U-Net, and runs the exported models.
//
//	dira config defaults           print every config key with its default
//	dira validate CONFIG           print the resolved config, or every problem
//	dira run CONFIG                run (or resume) the config's stages
//	dira version                   print dira, Go, gotch, libtorch and ONNX Runtime versions
//
// Exit status: 0 on success, 1 on a failed run, 2 on a bad config or usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/spf13/cobra"
)

// Version is dira's own version.
const Version = "0.1.0"

// usageError marks errors that exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// The CLI's gotch calls run on the main goroutine: keep it on one OS thread,
// since libtorch's grad mode and gotch's error slot are per thread.
func init() { runtime.LockOSThread() }

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run executes the CLI with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "dira",
		Short:         "DiRA self-supervised pre-training, export and inference",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(configCmd(), validateCmd(), runCmd(), modelCmd(), dataCmd(), exportCmd(), versionCmd(), inferCmd(), importCmd())
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "dira:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}
