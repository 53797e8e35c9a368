// Command labeled writes the built-in labelled synthetic data set as .npy
// arrays, for bench/labeled.py, which checks that a small network learns its
// findings and masks in about a minute (the demo's fine-tuning relies on it).
//
//	go run ./bench/labeled -out DIR [-size 64 -train 800 -test 300 -seed 1]
//
// It writes {train,test}_{img,lab,simg,msk}.npy: uint8 images [N,size,size]
// with their multi-label findings float32 [N,4], and uint8 segmentation
// images with their 0/255 lung masks.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"dira/data"
	"dira/internal/npy"
)

func main() {
	out := flag.String("out", "", "output folder")
	size := flag.Int("size", 64, "image side in pixels")
	train := flag.Int("train", 800, "training images")
	test := flag.Int("test", 300, "test images")
	seed := flag.Uint64("seed", 1, "synthetic seed")
	prevalence := flag.Float64("prevalence", 0.35, "probability of each finding")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "labeled: -out is required")
		os.Exit(2)
	}
	if err := run(*out, *size, *train, *test, *seed, *prevalence); err != nil {
		fmt.Fprintln(os.Stderr, "labeled:", err)
		os.Exit(1)
	}
}

func run(out string, size, train, test int, seed uint64, prevalence float64) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	nf := len(data.SyntheticFindings)
	for _, sp := range []struct {
		name   string
		n, off int
	}{{"train", train, 0}, {"test", test, train}} {
		cls := &data.LabeledSynthetic{N: sp.n, Size: size, Seed: seed, Offset: sp.off, Task: data.TaskMultiLabel,
			Findings: data.SyntheticFindings, Prevalence: prevalence}
		seg := &data.LabeledSynthetic{N: sp.n, Size: size, Seed: seed, Offset: sp.off, Task: data.TaskSegmentation}
		var img, simg, msk []uint8
		var lab []float32
		for i := 0; i < sp.n; i++ {
			ex, err := cls.LoadExample(i)
			if err != nil {
				return err
			}
			img, lab = append(img, ex.Image.Pix...), append(lab, ex.Labels...)
			ey, err := seg.LoadExample(i)
			if err != nil {
				return err
			}
			simg, msk = append(simg, ey.Image.Pix...), append(msk, ey.Mask.Pix...)
		}
		for name, a := range map[string]npy.Array{
			"img":  {Shape: []int{sp.n, size, size}, Data: img},
			"lab":  {Shape: []int{sp.n, nf}, Data: lab},
			"simg": {Shape: []int{sp.n, size, size}, Data: simg},
			"msk":  {Shape: []int{sp.n, size, size}, Data: msk},
		} {
			if err := writeNPY(filepath.Join(out, sp.name+"_"+name+".npy"), a); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeNPY(path string, a npy.Array) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := npy.Write(f, a); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
