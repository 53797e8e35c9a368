package data

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
)

// previewGap is the width in pixels of the gray lines between preview cells.
const previewGap = 4

// WritePreview writes a PNG grid of the first n samples of epoch 0 of the
// training source that cfg describes, exactly as a Loader with the given seed
// would produce them: one row per sample, view 1 (query) | view 2 (key) |
// restoration target (the last column only with restoration). Bad images are
// passed over under the skip policy and fail the preview under the fail policy.
func WritePreview(w io.Writer, cfg Config, n int, seed uint64) error {
	if n < 1 {
		return fmt.Errorf("data: preview: n must be >= 1, got %d", n)
	}
	if errs := cfg.Validate("data"); len(errs) > 0 {
		return fmt.Errorf("data: preview: %w", joinErrors(errs))
	}
	src, _, err := OpenSources(cfg)
	if err != nil {
		return fmt.Errorf("data: preview: %w", err)
	}
	l, err := NewLoader(src, cfg, 1, seed)
	if err != nil {
		return fmt.Errorf("data: preview: %w", err)
	}
	var rows [][]*Image
	for _, idx := range Order(seed, 0, src.Len(), l.opts.shuffle) {
		if len(rows) == n {
			break
		}
		s, err := l.sample(0, idx)
		if err != nil {
			if cfg.BadImages == BadImagesFail {
				return fmt.Errorf("data: preview: %w", err)
			}
			continue
		}
		row := []*Image{s.Query, s.Key}
		if s.Target != nil {
			row = append(row, s.Target)
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return fmt.Errorf("data: preview: no readable image in %d", src.Len())
	}
	if err := png.Encode(w, previewGrid(rows, cfg.ImageSize)); err != nil {
		return fmt.Errorf("data: preview: encode png: %w", err)
	}
	return nil
}

// previewGrid lays rows of equal-size cells out with gray gaps.
func previewGrid(rows [][]*Image, size int) image.Image {
	cols := len(rows[0])
	w := cols*size + (cols+1)*previewGap
	h := len(rows)*size + (len(rows)+1)*previewGap
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range out.Pix {
		out.Pix[i] = 128
	}
	for r, row := range rows {
		for c, m := range row {
			x0 := previewGap + c*(size+previewGap)
			y0 := previewGap + r*(size+previewGap)
			for y := 0; y < m.H; y++ {
				for x := 0; x < m.W; x++ {
					out.SetRGBA(x0+x, y0+y, color.RGBAModel.Convert(m.At(x, y)).(color.RGBA))
				}
			}
		}
	}
	return out
}
