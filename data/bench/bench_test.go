package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"dira/data"
)

var (
	imagesDir = flag.String("images", "", "folder of benchmark PNGs (default: 200 synthetic 1024x1024 images generated in a temporary folder)")
	batchSize = flag.Int("batch", 25, "batch size")
)

// BenchmarkLoader measures decode + augment + batch packing in images per
// second: one benchmark iteration is one epoch over the folder, with as many
// loader workers as GOMAXPROCS (set it with -cpu). The configuration is the
// official DiRA one (data.DefaultConfig: 224 views, restoration on).
func BenchmarkLoader(b *testing.B) {
	dir := *imagesDir
	if dir == "" {
		dir = b.TempDir()
		for i := range 200 {
			var buf bytes.Buffer
			if err := png.Encode(&buf, data.DrawRadiograph(1024, 1, uint64(i))); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("img%04d.png", i)), buf.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	src, err := data.NewFolderSource(dir, []string{".png"})
	if err != nil {
		b.Fatal(err)
	}
	cfg := data.DefaultConfig()
	cfg.Workers = runtime.GOMAXPROCS(0)
	cfg.BadImages = data.BadImagesFail
	l, err := data.NewLoader(src, cfg, *batchSize, 1)
	if err != nil {
		b.Fatal(err)
	}
	epoch := func(n int) int {
		e := l.Epoch(context.Background(), n)
		defer e.Close()
		images := 0
		for {
			bt, err := e.Next()
			if err == io.EOF {
				return images
			}
			if err != nil {
				b.Fatal(err)
			}
			images += bt.N
			bt.Release()
		}
	}
	epoch(1 << 20) // warm-up: page cache, buffers
	images := 0
	for i := 0; b.Loop(); i++ {
		images += epoch(i)
	}
	b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric(float64(cfg.Workers), "workers")
}
