package infer

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"dira/data"
	"dira/internal/atomicfile"
	"dira/internal/npy"
)

// RunOptions controls a batched run over image files.
type RunOptions struct {
	// Batch is the number of images per ONNX Runtime call (>= 1).
	Batch int
	// BadImages is the data package's policy for an unreadable image:
	// data.BadImagesSkip (report it, leave it out) or data.BadImagesFail.
	BadImages string
	// MaskBits is 8 or 16: the sample depth of the mask PNGs (U-Net).
	MaskBits int
	// Overlay also writes, per image, input | mask | mask over the input
	// side by side (U-Net, first mask channel).
	Overlay bool
	// Workers decode and resize images while the model runs, at most
	// MaxWorkers; 0 means DefaultWorkers.
	Workers int
	// Log receives the progress line, one line per skipped image, nothing
	// else; nil discards them.
	Log io.Writer
}

// DefaultWorkers is the number of decoding goroutines when
// RunOptions.Workers is 0.
const DefaultWorkers = 2

// MaxWorkers bounds RunOptions.Workers and RunOptions.Batch's decoding
// goroutines: each holds a decoded image, and far more of them than cores
// only adds memory.
const MaxWorkers = 256

// MaxBatch bounds RunOptions.Batch: a batch's input tensor is allocated at
// once (a 224x224 model takes 600 KB per image, 2.4 GB at MaxBatch).
const MaxBatch = 4096

// Summary is what a run did.
type Summary struct {
	Images  int      // images run through the model
	Skipped []string // why each skipped image was skipped (its path first)
	Elapsed time.Duration
	Device  string   // where the model ran: cpu or cuda
	Written []string // files written, outputs first
}

// ImagesPerSecond is the throughput over the whole run, decoding included.
func (s Summary) ImagesPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Images) / s.Elapsed.Seconds()
}

// item is one decoded image of a batch.
type item struct {
	idx  int // index in the run's inputs
	in   Input
	w, h int         // size of the file's image
	img  *data.Image // kept for overlays only
}

type batch struct {
	items   []item
	x       []float32 // [len(items),3,H,W]
	skipped []string
	err     error
}

// Run runs the model on inputs in batches and writes its outputs under out:
//
//   - encoder: features.npy, float32 [N,C] in input order (numpy.load reads
//     it), and index.csv mapping each row to its file;
//   - U-Net: masks/<name>.png per image (the mask resized back to the
//     image's own size, 8- or 16-bit gray; K>1 channels give
//     <name>_c<k>.png), optionally overlays/<name>.png, and index.csv.
//
// Images are decoded as the data package does (PNG or JPEG, 8/16-bit,
// gray/RGB/alpha), turned to RGB in [0,1] and resized to the model's input
// size (Preprocess). An unreadable image stops the run under
// data.BadImagesFail, and is listed in Summary.Skipped under
// data.BadImagesSkip.
func (m *Model) Run(ctx context.Context, inputs []Input, out string, opts RunOptions) (Summary, error) {
	sum := Summary{Device: m.Device()}
	if opts.Batch < 1 || opts.Batch > MaxBatch {
		return sum, fmt.Errorf("infer: batch must be in [1, %d], got %d", MaxBatch, opts.Batch)
	}
	if opts.Workers < 0 || opts.Workers > MaxWorkers {
		return sum, fmt.Errorf("infer: workers must be in [1, %d] (0: %d), got %d", MaxWorkers, DefaultWorkers, opts.Workers)
	}
	if opts.BadImages != data.BadImagesSkip && opts.BadImages != data.BadImagesFail {
		return sum, fmt.Errorf("infer: bad-images policy must be %s or %s, got %q", data.BadImagesSkip, data.BadImagesFail, opts.BadImages)
	}
	if m.Kind == KindUNet && opts.MaskBits != 8 && opts.MaskBits != 16 {
		return sum, fmt.Errorf("infer: mask bits must be 8 or 16, got %d", opts.MaskBits)
	}
	if len(inputs) == 0 {
		return sum, errors.New("infer: no images to run")
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	names, err := m.outputNames(inputs)
	if err != nil {
		return sum, err
	}
	// A model with a fixed batch size takes batches of exactly that many
	// images: run those, and pad the last one with zero images (their
	// outputs are dropped).
	if m.FixedBatch > 0 && opts.Batch != m.FixedBatch {
		fmt.Fprintf(log, "infer: model %s takes batches of exactly %d images: running batches of %d (the last one padded), not %d\n",
			m.path, m.FixedBatch, m.FixedBatch, opts.Batch)
		opts.Batch = m.FixedBatch
	}
	if need := int64(opts.Batch) * 3 * int64(m.Height) * int64(m.Width) * 4; need > MaxBatchBytes {
		return sum, fmt.Errorf("infer: a batch of %d images of 3x%dx%d needs %d MiB of input, more than %d MiB: lower the batch size",
			opts.Batch, m.Height, m.Width, need>>20, int64(MaxBatchBytes)>>20)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return sum, fmt.Errorf("infer: %w", err)
	}

	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := m.prepare(ctx, inputs, opts)
	prog := newProgress(log, len(inputs), start)
	var (
		features []float32
		rows     [][]string
	)
	done := 0
	for b := range batches {
		if b.err != nil {
			return sum, b.err
		}
		for _, s := range b.skipped {
			prog.note("skipped " + s)
		}
		sum.Skipped = append(sum.Skipped, b.skipped...)
		done += len(b.items) + len(b.skipped)
		if len(b.items) == 0 {
			prog.update(done, sum.Images)
			continue
		}
		n := int64(len(b.items))
		x := b.x
		if m.FixedBatch > 0 && n < int64(m.FixedBatch) {
			n = int64(m.FixedBatch)
			x = append(x, make([]float32, (m.FixedBatch-len(b.items))*3*m.Height*m.Width)...)
		}
		res, err := m.Session.Run(map[string]Tensor{m.Input: {Shape: []int64{n, 3, int64(m.Height), int64(m.Width)}, Data: x}})
		if err != nil {
			return sum, fmt.Errorf("infer: batch of %d starting with %s: %w", len(b.items), b.items[0].in.Path, err)
		}
		y := res[m.Output]
		if got := int64(len(y.Data)); len(y.Shape) == 0 || y.Shape[0] != n || got%n != 0 {
			return sum, fmt.Errorf("infer: model %s: output %q has shape %v for a batch of %d", m.path, m.Output, y.Shape, n)
		}
		switch m.Kind {
		case KindClassifier:
			c := int(y.Shape[1])
			for i, it := range b.items {
				row := []string{strconv.Itoa(len(rows)), it.in.Name}
				for _, p := range y.Data[i*c : (i+1)*c] {
					row = append(row, strconv.FormatFloat(float64(p), 'g', -1, 32))
				}
				rows = append(rows, row)
			}
		case KindEncoder:
			features = append(features, y.Data[:int64(len(b.items))*(int64(len(y.Data))/n)]...)
			for _, it := range b.items {
				rows = append(rows, []string{strconv.Itoa(len(rows)), it.in.Name})
			}
		case KindUNet:
			written, err := m.writeMasks(out, b.items, names, y, opts)
			if err != nil {
				return sum, err
			}
			for i, it := range b.items {
				rows = append(rows, []string{strconv.Itoa(len(rows)), it.in.Name, written[i]})
			}
		}
		sum.Images += len(b.items)
		prog.update(done, sum.Images)
	}
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("infer: %w", err)
	}
	prog.finish()
	if sum.Images == 0 {
		return sum, fmt.Errorf("infer: all %d images were skipped as unreadable", len(inputs))
	}

	header := []string{"row", "file"}
	index := "index.csv"
	if m.Kind == KindClassifier {
		header, index = append([]string{"row", "file"}, m.Labels...), "predictions.csv"
	} else if m.Kind == KindEncoder {
		c := len(features) / sum.Images
		p := filepath.Join(out, "features.npy")
		if err := atomicfile.Write(p, 0o644, func(w io.Writer) error {
			return npy.Write(w, npy.Array{Shape: []int{sum.Images, c}, Data: features})
		}); err != nil {
			return sum, fmt.Errorf("infer: %w", err)
		}
		sum.Written = append(sum.Written, p)
	} else if m.Kind == KindUNet {
		header = append(header, "mask")
	}
	p := filepath.Join(out, index)
	if err := atomicfile.Write(p, 0o644, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write(header)
		cw.WriteAll(rows)
		return cw.Error()
	}); err != nil {
		return sum, fmt.Errorf("infer: %w", err)
	}
	sum.Written = append(sum.Written, p)
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// outputNames gives each input its mask file name (U-Net): the input's
// name with the extension replaced by .png, relative names keeping their
// folders; two inputs that would share a name are an error.
func (m *Model) outputNames(inputs []Input) ([]string, error) {
	if m.Kind != KindUNet {
		return nil, nil
	}
	names := make([]string, len(inputs))
	seen := map[string]string{}
	for i, in := range inputs {
		n := filepath.ToSlash(in.Name)
		if path.IsAbs(n) || strings.HasPrefix(path.Clean(n), "../") {
			n = path.Base(n)
		}
		n = strings.TrimSuffix(path.Clean(n), path.Ext(n)) + ".png"
		if prev, dup := seen[n]; dup {
			return nil, fmt.Errorf("infer: %s and %s would both write mask %s", prev, in.Path, n)
		}
		seen[n] = in.Path
		names[i] = n
	}
	return names, nil
}

// prepare decodes and preprocesses the inputs batch by batch on
// opts.Workers goroutines, one batch ahead of the model.
func (m *Model) prepare(ctx context.Context, inputs []Input, opts RunOptions) <-chan batch {
	workers := opts.Workers
	if workers == 0 {
		workers = DefaultWorkers
	}
	ch := make(chan batch, 1)
	go func() {
		defer close(ch)
		plane := 3 * m.Height * m.Width
		for lo := 0; lo < len(inputs); lo += opts.Batch {
			ins := inputs[lo:min(lo+opts.Batch, len(inputs))]
			x := make([]float32, len(ins)*plane)
			items := make([]item, len(ins))
			errs := make([]error, len(ins))
			var wg sync.WaitGroup
			next := make(chan int)
			for range min(workers, len(ins)) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						img, err := data.DecodeFile(ins[i].Path)
						if err != nil {
							errs[i] = err
							continue
						}
						items[i] = item{idx: lo + i, in: ins[i], w: img.W, h: img.H}
						if opts.Overlay {
							items[i].img = img
						}
						copy(x[i*plane:(i+1)*plane], m.preprocess(img))
					}
				}()
			}
			for i := range ins {
				next <- i
			}
			close(next)
			wg.Wait()
			b := batch{}
			for i := range ins {
				if errs[i] == nil {
					b.x = append(b.x, x[i*plane:(i+1)*plane]...)
					b.items = append(b.items, items[i])
					continue
				}
				if opts.BadImages == data.BadImagesFail {
					b.err = fmt.Errorf("infer: image %s: %w (pass --bad-images skip to leave unreadable images out)", ins[i].Path, errs[i])
					break
				}
				b.skipped = append(b.skipped, errs[i].Error())
			}
			select {
			case ch <- b:
			case <-ctx.Done():
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	return ch
}

// writeMasks writes the masks (and overlays) of one batch; it returns each
// image's mask file name(s) for index.csv.
func (m *Model) writeMasks(out string, items []item, names []string, y Tensor, opts RunOptions) ([]string, error) {
	k := int(y.Shape[1])
	mh, mw := int(y.Shape[2]), int(y.Shape[3])
	var written []string
	for i, it := range items {
		base := names[it.idx]
		var files []string
		var first []float32
		for c := range k {
			plane := y.Data[(i*k+c)*mh*mw : (i*k+c+1)*mh*mw]
			mask := resizeFloat(plane, mw, mh, it.w, it.h)
			if c == 0 {
				first = mask
			}
			name := base
			if k > 1 {
				name = strings.TrimSuffix(base, ".png") + fmt.Sprintf("_c%d.png", c)
			}
			if err := writePNG(filepath.Join(out, "masks", filepath.FromSlash(name)), grayImage(mask, it.w, it.h, opts.MaskBits)); err != nil {
				return nil, err
			}
			files = append(files, path.Join("masks", name))
		}
		if opts.Overlay {
			p := filepath.Join(out, "overlays", filepath.FromSlash(base))
			if err := writePNG(p, overlay(it.img, first)); err != nil {
				return nil, err
			}
		}
		written = append(written, strings.Join(files, " "))
	}
	return written, nil
}

// grayImage quantises a mask in [0,1] (values outside are clamped) to an
// 8- or 16-bit gray image.
func grayImage(v []float32, w, h, bits int) image.Image {
	clamp := func(x float32) float64 { return math.Min(math.Max(float64(x), 0), 1) }
	if bits == 16 {
		g := image.NewGray16(image.Rect(0, 0, w, h))
		for i, x := range v {
			q := uint16(math.Round(clamp(x) * 65535))
			g.Pix[2*i], g.Pix[2*i+1] = uint8(q>>8), uint8(q)
		}
		return g
	}
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i, x := range v {
		g.Pix[i] = uint8(math.Round(clamp(x) * 255))
	}
	return g
}

// overlay puts the input, the mask and the mask over the input (red,
// opacity half the mask value) side by side.
func overlay(img *data.Image, mask []float32) image.Image {
	w, h := img.W, img.H
	rgb := img.RGB()
	o := image.NewRGBA(image.Rect(0, 0, 3*w, h))
	for y := range h {
		for x := range w {
			i := y*w + x
			r, g, b := rgb.Pix[3*i], rgb.Pix[3*i+1], rgb.Pix[3*i+2]
			mv := math.Min(math.Max(float64(mask[i]), 0), 1)
			q := uint8(math.Round(mv * 255))
			a := 0.5 * mv
			blend := func(c uint8, to float64) uint8 { return uint8(math.Round((1-a)*float64(c) + a*to)) }
			o.SetRGBA(x, y, color.RGBA{r, g, b, 255})
			o.SetRGBA(w+x, y, color.RGBA{q, q, q, 255})
			o.SetRGBA(2*w+x, y, color.RGBA{blend(r, 255), blend(g, 0), blend(b, 0), 255})
		}
	}
	return o
}

func writePNG(p string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("infer: encode %s: %w", p, err)
	}
	if err := atomicfile.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	return nil
}

// progress prints "infer: 48/100 images, 12.3 images/s": rewritten in place
// on a terminal, else one line per tenth of the run.
type progress struct {
	w      io.Writer
	tty    bool
	total  int
	start  time.Time
	tenth  int
	inLine bool
}

func newProgress(w io.Writer, total int, start time.Time) *progress {
	p := &progress{w: w, total: total, start: start}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(done, images int) {
	rate := float64(images) / math.Max(time.Since(p.start).Seconds(), 1e-9)
	line := fmt.Sprintf("infer: %d/%d images, %.1f images/s", done, p.total, rate)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.inLine = true
		return
	}
	if t := done * 10 / p.total; t > p.tenth || done == p.total {
		p.tenth = t
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) note(s string) {
	if p.inLine {
		fmt.Fprintln(p.w)
		p.inLine = false
	}
	fmt.Fprintln(p.w, "infer: "+s)
}

func (p *progress) finish() {
	if p.inLine {
		fmt.Fprintln(p.w)
		p.inLine = false
	}
}
