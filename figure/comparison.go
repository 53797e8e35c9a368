package figure

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Bar is one initialisation's result over its runs.
type Bar struct {
	Name string  // the initialisation ("dira", "random", "imagenet", ...)
	Mean float64 // NaN: no finished run
	Std  float64 // NaN or 0: no whisker (a single run)
	N    int     // runs behind Mean
}

// Comparison draws one bar per initialisation at its mean with a mean +- std
// whisker, the value written above it. For results such as AUCs, which
// differ in the second decimal, the y axis starts below the lowest whisker
// rather than at 0; each bar's number is printed so the scale cannot
// mislead.
func Comparison(bars []Bar, metric, title string) ([]byte, error) {
	p := comparisonPlot(bars, metric, title)
	w := max(3.6*vg.Inch, vg.Length(len(bars))*1.15*vg.Inch)
	return render(w, 3*vg.Inch, func(dc draw.Canvas) {
		p.Draw(draw.Crop(dc, vg.Points(4), -vg.Points(8), vg.Points(2), -vg.Points(4)))
	})
}

func comparisonPlot(bars []Bar, metric, title string) *plot.Plot {
	p := newPlot(title)
	p.Y.Label.Text = metric
	names := make([]string, len(bars))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, b := range bars {
		names[i] = b.Name
		if b.N > 0 {
			names[i] = fmt.Sprintf("%s (n=%d)", b.Name, b.N)
		}
		if !drawable(b.Mean) {
			continue
		}
		s := b.Std
		if !drawable(s) || s < 0 {
			s = 0
		}
		lo, hi = math.Min(lo, b.Mean-s), math.Max(hi, b.Mean+s)
	}
	if lo > hi {
		lo, hi = 0, 1
	} else {
		lo, hi = pad(lo, hi)
		// For positive results, start the axis half the padded range below
		// the lowest whisker so the shortest bar keeps about a third of the
		// height, or at 0 when that is close anyway.
		if lo >= 0 {
			base := lo - (hi*0.5 - lo*0.5)
			if base < 0.3*hi {
				base = 0
			}
			lo = base
		}
		hi += hi*0.12 - lo*0.12 // room for the value labels
		if !isFinite(hi) {
			hi = math.MaxFloat64
		}
	}
	if len(bars) > 0 {
		p.NominalX(names...)
	}
	p.X.Min, p.X.Max = -0.5, float64(max(len(bars), 1))-0.5
	p.Y.Min, p.Y.Max = lo, hi
	p.Add(barPlotter{bars: bars})
	return p
}

type barPlotter struct{ bars []Bar }

func (bp barPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	width := (trX(1) - trX(0)) * 0.6
	label := textStyle(labelSize)
	label.XAlign, label.YAlign = draw.XCenter, draw.YBottom
	base := trY(p.Y.Min)
	for i, b := range bp.bars {
		x := trX(float64(i))
		if !drawable(b.Mean) {
			c.FillText(label, vg.Point{X: x, Y: base + vg.Points(2)}, "n/a")
			continue
		}
		top := trY(b.Mean)
		if !isFinite(float64(top)) || !isFinite(float64(base)) {
			// Beyond what the canvas can place (a value near the float64
			// limit): print the number only, since the rasterizer does
			// not return on such coordinates.
			c.FillText(label, vg.Point{X: x, Y: c.Min.Y + vg.Points(2)}, fmt.Sprintf("%.3g", b.Mean))
			continue
		}
		rect := vg.Rectangle{Min: vg.Point{X: x - width/2, Y: base}, Max: vg.Point{X: x + width/2, Y: top}}
		c.SetColor(paletteColor(i))
		c.Fill(rect.Path())
		text := fmt.Sprintf("%.3f", b.Mean)
		labelY := top
		if lo, hi := trY(b.Mean-b.Std), trY(b.Mean+b.Std); drawable(b.Std) && b.Std > 0 && isFinite(float64(lo)) && isFinite(float64(hi)) {
			ls := draw.LineStyle{Color: black, Width: vg.Points(1)}
			c.StrokeLine2(ls, x, lo, x, hi)
			c.StrokeLine2(ls, x-width/6, lo, x+width/6, lo)
			c.StrokeLine2(ls, x-width/6, hi, x+width/6, hi)
			text += fmt.Sprintf(" ± %.3f", b.Std)
			labelY = hi
		}
		c.FillText(label, vg.Point{X: x, Y: labelY + vg.Points(2)}, text)
	}
}
