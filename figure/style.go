package figure

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The shared style. Every figure is drawn at dpi with these font sizes, so
// figures placed side by side in a report have the same text size.
const (
	dpi        = 120
	titleSize  = 10 // panel titles
	labelSize  = 9  // axis labels, legend entries, bar values
	tickSize   = 8  // tick labels
	headerSize = 11 // a figure's own title above all panels
)

// palette is Okabe and Ito's colour-blind-safe set (yellow dropped: it is
// unreadable on white), then darker tones for figures with many series.
var palette = []color.Color{
	color.RGBA{0x00, 0x72, 0xB2, 0xff}, // blue
	color.RGBA{0xD5, 0x5E, 0x00, 0xff}, // vermillion
	color.RGBA{0x00, 0x9E, 0x73, 0xff}, // bluish green
	color.RGBA{0xCC, 0x79, 0xA7, 0xff}, // reddish purple
	color.RGBA{0xE6, 0x9F, 0x00, 0xff}, // orange
	color.RGBA{0x56, 0xB4, 0xE9, 0xff}, // sky blue
	color.RGBA{0x55, 0x55, 0x55, 0xff}, // grey
	color.RGBA{0x88, 0x22, 0x55, 0xff}, // wine
	color.RGBA{0x33, 0x66, 0x22, 0xff}, // olive
	color.RGBA{0x44, 0x33, 0x99, 0xff}, // indigo
}

var (
	black     = color.Black
	lightGrey = color.RGBA{0xd8, 0xd8, 0xd8, 0xff}
	midGrey   = color.RGBA{0x99, 0x99, 0x99, 0xff}
)

// paletteColor is the i-th colour, cycling past the palette's end.
func paletteColor(i int) color.Color {
	if i < 0 {
		i = -i
	}
	return palette[i%len(palette)]
}

// faint returns c at a third of its opacity (premultiplied, as color.RGBA is).
func faint(c color.Color) color.Color {
	r, g, b, a := c.RGBA()
	const keep = 3
	return color.RGBA64{uint16(r / keep), uint16(g / keep), uint16(b / keep), uint16(a / keep)}
}

// sans is Liberation Sans, one of the fonts gonum/plot embeds, so figures
// look the same on every machine.
var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

func textStyle(size vg.Length) text.Style {
	return text.Style{Color: black, Font: font.From(sans, size), Handler: plot.DefaultTextHandler}
}

// newPlot is a plot in the shared style: small fonts, light grid.
func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle = textStyle(titleSize)
	p.Title.TextStyle.XAlign = draw.XCenter
	p.Title.TextStyle.YAlign = draw.YTop
	p.Title.Padding = vg.Points(4)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle = textStyle(labelSize)
		a.Tick.Label = textStyle(tickSize)
		a.Padding = vg.Points(2)
	}
	p.Y.Label.TextStyle.Rotation = 0 // plot adds the quarter turn itself
	p.Y.Tick.Label.XAlign = draw.XRight
	p.Y.Tick.Label.YAlign = draw.YCenter
	p.X.Tick.Label.XAlign = draw.XCenter
	p.X.Tick.Label.YAlign = draw.YTop
	p.Y.Tick.Marker = readableTicks{}
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = lightGrey, lightGrey
	g.Vertical.Width, g.Horizontal.Width = vg.Points(0.5), vg.Points(0.5)
	p.Add(g)
	return p
}

// newLegend is a legend in the shared style, drawn by the figure beside its
// panels rather than inside one.
func newLegend() plot.Legend {
	l := plot.NewLegend()
	l.TextStyle = textStyle(labelSize)
	l.Top, l.Left = true, true
	l.ThumbnailWidth = vg.Points(18)
	l.Padding = vg.Points(2)
	return l
}

// render draws a w x h figure with paint and encodes it as PNG. A panic in
// gonum/plot while drawing comes back as an error: a figure is never worth
// stopping a training run for.
func render(w, h vg.Length, paint func(dc draw.Canvas)) (png []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("figure: draw: %v", r)
		}
	}()
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	paint(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("figure: encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// readableTicks are gonum's default ticks relabelled with the fewest
// decimals that tell the labels apart and print each value exactly: the
// default can print 5.9 and 6.0 both as "6".
type readableTicks struct{}

func (readableTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	var major []int
	big := 0.0
	for i, t := range ts {
		if t.Label != "" {
			major = append(major, i)
			big = math.Max(big, math.Abs(t.Value))
		}
	}
	format, first := byte('f'), 0
	if big >= 1e6 || (big > 0 && big < 1e-4) {
		format, first = 'g', 1 // significant digits instead of decimals
	}
	for prec := first; prec <= 12; prec++ {
		labels := make([]string, len(major))
		seen := map[string]bool{}
		ok := true
		for j, i := range major {
			v := ts[i].Value
			labels[j] = strconv.FormatFloat(v, format, prec, 64)
			back, _ := strconv.ParseFloat(labels[j], 64)
			if seen[labels[j]] || math.Abs(back-v) > 1e-9*math.Max(big, 1e-300) {
				ok = false
				break
			}
			seen[labels[j]] = true
		}
		if ok {
			for j, i := range major {
				ts[i].Label = labels[j]
			}
			return ts
		}
	}
	return ts
}
