package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"dira/data"
	"dira/infer"
)

func inferCmd() *cobra.Command {
	var (
		modelPath, input, root, out, device, ortLib, bad string
		strict, overlay                                  bool
		batch, threads, deviceID, maskBits, workers      int
	)
	c := &cobra.Command{
		Use:   "infer --model FILE.onnx --input DIR|LIST --out DIR",
		Short: "Run an exported encoder or U-Net (ONNX) on images: features.npy, or one mask PNG per image",
		Long: `Run an exported model (dira export's encoder.onnx or unet.onnx) in ONNX Runtime on
every PNG/JPEG under a folder, on the images a list file names ("<file> [labels...]"
per line, relative to --root or the list's folder), or on one image.

Images are decoded as in training (8/16-bit, gray/RGB), made RGB in [0,1] and resized
to the model's input size. An encoder writes features.npy (float32 [N,C]) and index.csv
(row,file); a U-Net writes masks/<name>.png at each image's own size, index.csv, and
with --overlay overlays/<name>.png (image | mask | mask over the image).

--device auto uses CUDA when ONNX Runtime's CUDA provider and a GPU are there, else
the CPU; --device cuda does the same but says it is a fallback, and with
--strict-device fails instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(infer.Devices, device) {
				return usageError{fmt.Errorf("--device must be one of %s, got %q", strings.Join(infer.Devices, ", "), device)}
			}
			if bad != data.BadImagesSkip && bad != data.BadImagesFail {
				return usageError{fmt.Errorf("--bad-images must be %s or %s, got %q", data.BadImagesSkip, data.BadImagesFail, bad)}
			}
			var problems []error
			if batch < 1 || batch > infer.MaxBatch {
				problems = append(problems, fmt.Errorf("--batch must be in [1, %d], got %d", infer.MaxBatch, batch))
			}
			if threads < 0 || threads > infer.MaxThreads {
				problems = append(problems, fmt.Errorf("--threads must be in [0, %d] (0: one per physical core), got %d", infer.MaxThreads, threads))
			}
			if workers < 1 || workers > infer.MaxWorkers {
				problems = append(problems, fmt.Errorf("--workers must be in [1, %d], got %d", infer.MaxWorkers, workers))
			}
			if maskBits != 8 && maskBits != 16 {
				problems = append(problems, fmt.Errorf("--mask-bits must be 8 or 16, got %d", maskBits))
			}
			if len(problems) > 0 {
				return usageError{errors.Join(problems...)}
			}
			inputs, err := infer.ListInputs(input, root)
			if err != nil {
				return err
			}
			lib, err := infer.FindLibrary(ortLib, "")
			if err != nil {
				return err
			}
			if err := infer.Start(lib); err != nil {
				return err
			}
			defer infer.Stop()
			m, err := infer.OpenModel(modelPath, infer.SessionOptions{Device: device, DeviceID: deviceID, Strict: strict, Threads: threads})
			if err != nil {
				return err
			}
			defer m.Close()
			log := cmd.ErrOrStderr()
			if why := m.Fallback(); why != "" {
				fmt.Fprintf(log, "infer: --device %s: CUDA not used, running on the CPU: %s\n", device, why)
			}
			fmt.Fprintf(log, "infer: %s: %s [N,3,%d,%d] -> %s, %d images, batch %d, on %s\n",
				modelPath, m.Kind, m.Height, m.Width, m.Output, len(inputs), batch, m.Device())
			sum, err := m.Run(cmd.Context(), inputs, out, infer.RunOptions{
				Batch: batch, BadImages: bad, MaskBits: maskBits, Overlay: overlay, Workers: workers, Log: log,
			})
			if err != nil {
				return err
			}
			skipped := ""
			if n := len(sum.Skipped); n > 0 {
				skipped = fmt.Sprintf(" (%d unreadable skipped)", n)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "infer: %d images%s in %.2f s, %.1f images/s on %s; wrote %s\n",
				sum.Images, skipped, sum.Elapsed.Seconds(), sum.ImagesPerSecond(), sum.Device, strings.Join(sum.Written, ", "))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&modelPath, "model", "", "exported ONNX model: encoder.onnx (features.npy), unet.onnx or segmenter.onnx (mask PNGs), classifier.onnx (predictions.csv)")
	f.StringVar(&input, "input", "", "folder of images, list file, or one image")
	f.StringVar(&root, "root", "", "folder a list file's names are relative to (default: the list's folder)")
	f.StringVar(&out, "out", "", "output folder")
	f.StringVar(&device, "device", infer.DeviceAuto, "auto, cpu or cuda")
	f.IntVar(&deviceID, "device-id", 0, "CUDA device ordinal")
	f.BoolVar(&strict, "strict-device", false, "with --device cuda: fail instead of falling back to the CPU")
	f.IntVar(&batch, "batch", 8, fmt.Sprintf("images per ONNX Runtime call (1 to %d)", infer.MaxBatch))
	f.IntVar(&threads, "threads", 0, fmt.Sprintf("ONNX Runtime intra-op threads, at most %d (0: one per physical core)", infer.MaxThreads))
	f.IntVar(&workers, "workers", infer.DefaultWorkers, fmt.Sprintf("goroutines decoding images while the model runs (1 to %d)", infer.MaxWorkers))
	f.StringVar(&ortLib, "ort-lib", "", "path of libonnxruntime.so (default: $DIRA_ORT_LIB, then .deps/onnxruntime/)")
	f.StringVar(&bad, "bad-images", data.DefaultConfig().BadImages, "unreadable image: skip (report it) or fail")
	f.IntVar(&maskBits, "mask-bits", 8, "U-Net masks: 8- or 16-bit PNG")
	f.BoolVar(&overlay, "overlay", false, "U-Net: also write image | mask | overlay side by side")
	for _, req := range []string{"model", "input", "out"} {
		c.MarkFlagRequired(req)
	}
	return c
}
