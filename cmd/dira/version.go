package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"dira/infer"
	"dira/internal/torch"
)

func versionCmd() *cobra.Command {
	var ortLib string
	c := &cobra.Command{
		Use:   "version",
		Short: "Print dira, Go, gotch, libtorch and ONNX Runtime versions as detected at run time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versions(ortLib)
			for _, k := range []string{"dira", "go", "gotch", "libtorch", "onnxruntime"} {
				fmt.Fprintf(cmd.OutOrStdout(), "%-12s %s\n", k, v[k])
			}
			return nil
		},
	}
	c.Flags().StringVar(&ortLib, "ort-lib", "", "path of libonnxruntime.so (default: $DIRA_ORT_LIB, then .deps/onnxruntime/)")
	return c
}

// versions detects the versions of dira and everything it runs on. A part that
// cannot be loaded reports why instead of a version.
func versions(ortLib string) map[string]string {
	v := map[string]string{
		"dira":     Version,
		"go":       runtime.Version(),
		"gotch":    moduleVersion("github.com/sugarme/gotch"),
		"libtorch": torch.Version(),
	}
	lib, err := infer.FindLibrary(ortLib, "")
	if err == nil {
		err = infer.Start(lib)
	}
	if err != nil {
		v["onnxruntime"] = "unavailable: " + err.Error()
	} else {
		v["onnxruntime"] = infer.Version()
		infer.Stop()
	}
	return v
}

func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "unknown"
}
