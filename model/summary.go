package model

import (
	"fmt"
	"io"
	"strings"

	"github.com/sugarme/gotch"

	"dira/internal/torch"
)

// Part is one network part and its trainable parameter count.
type Part struct {
	Name   string
	Params int64
}

// Summary describes the configured networks: parameter counts per part and
// the shape of each encoder stage for one input of the configured size.
type Summary struct {
	Arch        string
	InputSize   int
	Parts       []Part    // encoder, decoder, segmentation_head, projection head, discriminator, U-Net total, total
	StageShapes [][]int64 // f0 (input) .. f5 (layer4)
}

// Summarize builds the networks of c and measures them; the stage shapes come
// from a real eval-mode forward of one blank image of size x size.
func Summarize(c Config, size int, seed uint64) (s Summary, err error) {
	err = torch.Do(func() error {
		s, err = summarize(c, size, seed)
		return err
	})
	return s, err
}

func summarize(c Config, size int, seed uint64) (s Summary, err error) {
	u, ups, err := NewUNet(c, seed)
	if err != nil {
		return s, err
	}
	defer ups.Drop()
	_, pps, err := NewProjection(c, seed)
	if err != nil {
		return s, err
	}
	defer pps.Drop()
	dps := NewParams()
	defer dps.Drop()
	NewDiscriminator(dps, c.Discriminator, seed)

	projName := "projection head (Linear)"
	if c.Projection.MLP {
		projName = "projection head (MLP)"
	}
	s = Summary{Arch: c.Arch, InputSize: size}
	s.Parts = []Part{
		{"encoder", ups.Count("encoder.")},
		{"decoder", ups.Count("decoder.")},
		{"segmentation_head", ups.Count("segmentation_head.")},
		{projName, pps.Count("")},
		{"discriminator", dps.Count("")},
		{"U-Net total", ups.Count("")},
		{"total", ups.Count("") + pps.Count("") + dps.Count("")},
	}

	defer torch.Catch("model: summary forward", &err)
	x := torch.Zeros([]int64{1, 3, int64(size), int64(size)}, gotch.Float)
	defer torch.Drop(x)
	torch.NoGrad(func() {
		f := u.Encoder.forward(x, Eval)
		s.StageShapes = append(s.StageShapes, torch.Size(x))
		for _, t := range f {
			s.StageShapes = append(s.StageShapes, torch.Size(t))
		}
		torch.Drop(f[:]...)
	})
	return s, nil
}

// Write prints the summary, one line per part, then the encoder stage shapes.
func (s Summary) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s U-Net, input %dx%d\n", s.Arch, s.InputSize, s.InputSize)
	for _, p := range s.Parts {
		fmt.Fprintf(&b, "  %-26s %14s parameters\n", p.Name, thousands(p.Params))
	}
	names := []string{"input", "stem (conv1)", "layer1", "layer2", "layer3", "layer4"}
	b.WriteString("encoder stages:\n")
	for i, sh := range s.StageShapes {
		fmt.Fprintf(&b, "  f%d %-13s %v\n", i, names[i], sh)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
