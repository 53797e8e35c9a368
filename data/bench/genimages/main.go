package main

import (
	"bytes"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"dira/data"
)

func main() {
	out := flag.String("out", "", "output folder (created)")
	n := flag.Int("n", 200, "number of images")
	size := flag.Int("size", 1024, "side length in pixels (ChestX-ray14: 1024)")
	seed := flag.Uint64("seed", 1, "synthetic image seed")
	flag.Parse()
	if *out == "" || *n < 1 || *size < 16 {
		fmt.Fprintln(os.Stderr, "genimages: need -out DIR, -n >= 1, -size >= 16")
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "genimages:", err)
		os.Exit(1)
	}
	jobs := make(chan int)
	errs := make(chan error, *n)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range jobs {
				var b bytes.Buffer
				if err := png.Encode(&b, data.DrawRadiograph(*size, *seed, uint64(i))); err != nil {
					errs <- fmt.Errorf("image %d: %w", i, err)
					continue
				}
				p := filepath.Join(*out, fmt.Sprintf("img%04d.png", i))
				if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range *n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, "genimages:", err)
		os.Exit(1)
	}
	fmt.Printf("genimages: wrote %d images of %dx%d to %s\n", *n, *size, *size, *out)
}
