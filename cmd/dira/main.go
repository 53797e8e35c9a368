// Command dira pre-trains a U-Net with DiRA (discriminative, restorative and
// adversarial self-supervised learning) from one YAML file, exports the encoder
// and U-Net, and runs the exported models.
//
//	dira config defaults                    every config key with its default, per stage kind
//	dira validate CONFIG                    the resolved config, or every problem
//	dira run CONFIG                         run (or resume) the config's stages
//	dira model summary CONFIG               parameter counts and encoder stage shapes
//	dira data preview CONFIG --out F.png    a grid of what the network is fed
//	dira export --checkpoint C --out DIR    ONNX and .pth artifacts of a checkpoint
//	dira infer --model M.onnx --input DIR   run an exported model in ONNX Runtime
//	dira import FILE.pth --out DIR          an official DiRA checkpoint as a dira run
//	dira report RUN_DIR                     a self-contained HTML report of a run
//	dira version                            dira, Go, gotch, libtorch, ONNX Runtime versions
//
// The commands only parse flags and print; the work is in the packages.
// Exit status: 0 on success, 1 on a failed run, 2 on a bad config or usage,
// 130 when interrupted (SIGINT or SIGTERM).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	// gotch's init must find a usable cache folder even without a writable
	// home; this package runs first and gives it one.
	_ "dira/internal/gotchcache"
	"dira/stages"
)

// Version is dira's own version.
const Version = "0.1.0"

// usageError marks errors that exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, stages.Options{})) }

// run executes the CLI with args and returns the exit status. o reaches every
// stage `dira run` builds (tests set hooks in it).
func run(args []string, stdout, stderr io.Writer, o stages.Options) int {
	root := &cobra.Command{
		Use:           "dira",
		Short:         "DiRA self-supervised pre-training, export and inference",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(configCmd(), validateCmd(), runCmd(o), modelCmd(), dataCmd(), exportCmd(), versionCmd(), inferCmd(), importCmd(), reportCmd())
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Every command runs under a context that SIGINT and SIGTERM cancel;
	// one that does not stop within stopGrace is ended (signals.go).
	in := catchInterrupts(stderr, stopGrace, os.Exit)
	defer in.stop()
	if err := root.ExecuteContext(in.context()); err != nil {
		fmt.Fprintln(stderr, "dira:", err)
		var ue usageError
		switch {
		case in.signal() != nil:
			return exitInterrupted
		case errors.As(err, &ue):
			return 2
		}
		return 1
	}
	return 0
}
