package infer

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"dira/data"
)

// Input is one image to run: the file to read and the name its outputs and
// index.csv row carry (the path relative to the input folder, or the file
// as the list names it).
type Input struct {
	Path, Name string
}

// ImageExtensions are the file names ListInputs picks from a folder.
var ImageExtensions = []string{".png", ".jpg", ".jpeg"}

// ListInputs lists the images input names: a folder (every PNG and JPEG
// under it, recursively, in lexical order), a single image file, or a list
// file in the data package's format ("<file> [labels...]" per line), whose
// relative names are joined onto root (default: the list's folder).
func ListInputs(input, root string) ([]Input, error) {
	st, err := os.Stat(input)
	if err != nil {
		return nil, fmt.Errorf("infer: input: %w", err)
	}
	if st.IsDir() {
		src, err := data.NewFolderSource(input, ImageExtensions)
		if err != nil {
			return nil, fmt.Errorf("infer: input: %w", err)
		}
		out := make([]Input, len(src.Files))
		for i, f := range src.Files {
			out[i] = Input{Path: src.Name(i), Name: f}
		}
		return out, nil
	}
	lower := strings.ToLower(input)
	for _, e := range ImageExtensions {
		if strings.HasSuffix(lower, e) {
			return []Input{{Path: input, Name: filepath.Base(input)}}, nil
		}
	}
	entries, err := data.ReadListFile(input)
	if err != nil {
		return nil, fmt.Errorf("infer: input: %w", err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("infer: input: list %s names no images", input)
	}
	if root == "" {
		root = filepath.Dir(input)
	}
	out := make([]Input, len(entries))
	for i, e := range entries {
		p := e.File
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		out[i] = Input{Path: p, Name: e.File}
	}
	return out, nil
}

// preprocess is Preprocess with the model's evaluation transform: a
// classifier resizes (its eval_resize) and center-crops, as its validation
// and test images were during fine-tuning.
func (m *Model) preprocess(img *data.Image) []float32 {
	if m.Kind == KindClassifier && m.ResizeSize > 0 {
		var r *data.Image
		if m.ResizeShorter {
			r = data.ResizeShorter(img, m.ResizeSize)
		} else {
			r = data.Resize(img, m.ResizeSize, m.ResizeSize)
		}
		img = data.CenterCrop(r, m.Height, m.Width)
	}
	return Preprocess(img, m.Height, m.Width)
}

// Preprocess turns a decoded image into the model input for one image:
// RGB (a gray image repeated on three channels, as PIL's convert('RGB')),
// resized to w x h with the data package's PIL-equal bilinear filter,
// scaled to [0,1] (ToTensor; no mean/std normalisation, as in
// pre-training), channels first [3,h,w].
func Preprocess(img *data.Image, h, w int) []float32 {
	r := img
	if img.W != w || img.H != h {
		r = data.ResizedCrop(img, 0, 0, img.H, img.W, h, w)
	}
	out := make([]float32, 3*h*w)
	plane := h * w
	for i := range plane {
		if r.C == 1 {
			v := float32(r.Pix[i]) / 255
			out[i], out[plane+i], out[2*plane+i] = v, v, v
			continue
		}
		for c := range 3 {
			out[c*plane+i] = float32(r.Pix[3*i+c]) / 255
		}
	}
	return out
}

// resizeFloat resamples a single-channel float image from sw x sh to
// dw x dh with a triangle (bilinear) filter widened when shrinking, as
// PIL's antialiased BILINEAR resize does on 8-bit images; used to bring
// masks back to the input's size before they are quantised.
func resizeFloat(src []float32, sw, sh, dw, dh int) []float32 {
	if sw == dw && sh == dh {
		return src
	}
	hw := triangleWeights(sw, dw)
	vw := triangleWeights(sh, dh)
	tmp := make([]float32, dw*sh)
	for y := range sh {
		row := src[y*sw : (y+1)*sw]
		for x := range dw {
			var acc float64
			for j, k := range hw.k[x] {
				acc += k * float64(row[hw.first[x]+j])
			}
			tmp[y*dw+x] = float32(acc)
		}
	}
	out := make([]float32, dw*dh)
	for y := range dh {
		for j, k := range vw.k[y] {
			row := tmp[(vw.first[y]+j)*dw : (vw.first[y]+j+1)*dw]
			for x, v := range row {
				out[y*dw+x] += float32(k) * v
			}
		}
	}
	return out
}

type weights struct {
	first []int
	k     [][]float64
}

// triangleWeights computes, for each output pixel, the first input pixel and
// the normalised triangle-filter weights (PIL's precompute_coeffs with
// support 1, scaled by the shrink factor).
func triangleWeights(in, out int) weights {
	scale := float64(in) / float64(out)
	fs := math.Max(scale, 1)
	support := fs
	w := weights{first: make([]int, out), k: make([][]float64, out)}
	for i := range out {
		center := (float64(i) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		var ks []float64
		var sum float64
		for x := lo; x < hi; x++ {
			v := 1 - math.Abs((float64(x)-center+0.5)/fs)
			v = math.Max(v, 0)
			ks = append(ks, v)
			sum += v
		}
		for j := range ks {
			if sum > 0 {
				ks[j] /= sum
			}
		}
		w.first[i], w.k[i] = lo, ks
	}
	return w
}
