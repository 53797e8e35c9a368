package figure

import (
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Style is how a series is drawn.
type Style int

// Series styles.
const (
	Line       Style = iota // a line through the points
	Points                  // a marker at each point
	LinePoints              // both
)

// Series is one named curve. Points whose X or Y is NaN or infinite are
// left out. A series whose only drawable point is single is drawn as a
// marker whatever its Style, so a one-epoch run still shows its value.
type Series struct {
	Name  string // legend entry; series of one figure with the same name share a colour and one entry
	X, Y  []float64
	Style Style
	Color color.Color // nil: a palette colour chosen by Name
	Faint bool        // thin and translucent, for dense raw values under a summary
	Thick bool        // heavier line, for a summary such as a mean curve
	Dash  bool        // dashed line
}

// Panel is one small plot of a figure.
type Panel struct {
	Title  string
	YLabel string
	Series []Series
	// YMin and YMax fix the y range when YFixed is set (an ROC's [0,1]);
	// otherwise the panel's range covers its own drawable points.
	YMin, YMax float64
	YFixed     bool
}

// Options lays out a figure of panels.
type Options struct {
	Title   string // drawn above all panels ("" = none)
	XLabel  string // under each bottom panel
	Columns int    // panels per row (0 = 2, or 1 for a single panel)
	// EpochTicks puts the x ticks at whole numbers (training epochs).
	EpochTicks bool
	// XMin and XMax fix the shared x range when XFixed is set; otherwise it
	// covers every panel's points (from 0 with EpochTicks).
	XMin, XMax float64
	XFixed     bool
	// PanelWidth and PanelHeight are each panel's size (0 = 3.1 x 1.9 inches).
	PanelWidth, PanelHeight vg.Length
}

// ErrNoPanels is returned when a figure has nothing to draw.
var ErrNoPanels = errors.New("figure: no panels")

// Panels draws panels as a grid of small multiples sharing one x range,
// with one legend for the whole figure to the right of the grid.
func Panels(panels []Panel, o Options) ([]byte, error) {
	if len(panels) == 0 {
		return nil, ErrNoPanels
	}
	cols := o.Columns
	if cols <= 0 {
		cols = 2
	}
	cols = min(cols, len(panels))
	rows := (len(panels) + cols - 1) / cols
	pw, ph := o.PanelWidth, o.PanelHeight
	if pw <= 0 {
		pw = 3.1 * vg.Inch
	}
	if ph <= 0 {
		ph = 1.9 * vg.Inch
	}

	xmin, xmax := xRange(panels, o)
	colors := colorsByName(panels)
	leg := newLegend()
	seen := map[string]bool{}
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, pan := range panels {
		p, thumbs, err := panelPlot(pan, colors)
		if err != nil {
			return nil, err
		}
		p.X.Min, p.X.Max = xmin, xmax
		if o.EpochTicks {
			p.X.Tick.Marker = epochTicks{}
		}
		r, c := i/cols, i%cols
		// The x label goes under the lowest panel of each column.
		if r == rows-1 || i+cols >= len(panels) {
			p.X.Label.Text = o.XLabel
		}
		grid[r][c] = p
		for _, t := range thumbs {
			if !seen[t.name] {
				seen[t.name] = true
				leg.Add(t.name, t.thumbs...)
			}
		}
	}

	pad := vg.Points(6)
	var legendW vg.Length
	if len(seen) > 0 {
		probe := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: 1000, Y: 1000}}}
		legendW = leg.Rectangle(probe).Size().X + 2*pad
	}
	var headerH vg.Length
	header := textStyle(headerSize)
	header.XAlign, header.YAlign = draw.XLeft, draw.YTop
	if o.Title != "" {
		headerH = header.Height(o.Title) + pad
	}
	legendH := vg.Length(0)
	if len(seen) > 0 {
		probe := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: 1000, Y: 1000}}}
		legendH = leg.Rectangle(probe).Size().Y
	}
	w := vg.Length(cols)*pw + legendW
	h := max(vg.Length(rows)*ph, legendH+2*pad) + headerH
	return render(w, h, func(dc draw.Canvas) {
		if o.Title != "" {
			dc.FillText(header, vg.Point{X: dc.Min.X + pad, Y: dc.Max.Y - pad/2}, o.Title)
		}
		area := draw.Crop(dc, 0, -legendW, 0, -headerH)
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(10), PadY: vg.Points(8),
			PadTop: vg.Points(2), PadBottom: vg.Points(2), PadLeft: vg.Points(4), PadRight: vg.Points(4)}
		canvases := plot.Align(grid, tiles, area)
		for r := range grid {
			for c, p := range grid[r] {
				if p != nil {
					p.Draw(canvases[r][c])
				}
			}
		}
		if len(seen) > 0 {
			lc := draw.Crop(dc, dc.Max.X-dc.Min.X-legendW+pad, 0, 0, -headerH-pad)
			leg.Draw(lc)
		}
	})
}

type legendEntry struct {
	name   string
	thumbs []plot.Thumbnailer
}

// colorsByName gives each series name without an explicit colour the next
// palette colour, in order of first appearance, so "validation" is the same
// colour in every panel.
func colorsByName(panels []Panel) map[string]color.Color {
	m := map[string]color.Color{}
	n := 0
	for _, p := range panels {
		for _, s := range p.Series {
			if s.Color != nil {
				continue
			}
			if _, ok := m[s.Name]; !ok {
				m[s.Name] = paletteColor(n)
				n++
			}
		}
	}
	return m
}

// panelPlot builds one panel's plot and the legend entries of its series.
func panelPlot(pan Panel, colors map[string]color.Color) (*plot.Plot, []legendEntry, error) {
	p := newPlot(pan.Title)
	p.Y.Label.Text = pan.YLabel
	lo, hi, ok := yRange(pan.Series)
	if pan.YFixed && pan.YMin < pan.YMax {
		lo, hi = pan.YMin, pan.YMax
	}
	p.Y.Min, p.Y.Max = lo, hi
	var entries []legendEntry
	for _, s := range pan.Series {
		xys := finite(s.X, s.Y)
		clr := s.Color
		if clr == nil {
			clr = colors[s.Name]
		}
		if s.Faint {
			clr = faint(clr)
		}
		ls := draw.LineStyle{Color: clr, Width: vg.Points(1.2)}
		switch {
		case s.Faint:
			ls.Width = vg.Points(0.7)
		case s.Thick:
			ls.Width = vg.Points(2.2)
		}
		if s.Dash {
			ls.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		gs := draw.GlyphStyle{Color: clr, Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
		var thumbs []plot.Thumbnailer
		drawLine := s.Style != Points && len(xys) > 1
		drawMarks := s.Style != Line || len(xys) == 1
		if drawLine {
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, nil, fmt.Errorf("figure: series %q: %w", s.Name, err)
			}
			l.LineStyle = ls
			p.Add(l)
			thumbs = append(thumbs, l)
		}
		if drawMarks && len(xys) > 0 {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, nil, fmt.Errorf("figure: series %q: %w", s.Name, err)
			}
			sc.GlyphStyle = gs
			p.Add(sc)
			thumbs = append(thumbs, sc)
		}
		if len(thumbs) == 0 {
			// Nothing drawable, but the legend still names the series in
			// its style, so a reader knows it was expected.
			l := &plotter.Line{LineStyle: ls}
			thumbs = append(thumbs, l)
		}
		if s.Name != "" {
			entries = append(entries, legendEntry{s.Name, thumbs})
		}
	}
	if !ok && !pan.YFixed {
		p.Add(noData{})
	}
	// p.Add widened the range to the data; put back the panel's own range.
	p.Y.Min, p.Y.Max = lo, hi
	return p, entries, nil
}

// finite keeps the drawable points: both coordinates finite and within
// maxMagnitude.
func finite(x, y []float64) plotter.XYs {
	n := min(len(x), len(y))
	out := make(plotter.XYs, 0, n)
	for i := range n {
		if drawable(x[i]) && drawable(y[i]) {
			out = append(out, plotter.XY{X: x[i], Y: y[i]})
		}
	}
	return out
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// maxMagnitude bounds drawable values. Past it, differences of values can
// overflow to infinity and gonum's axis arithmetic produces NaN
// coordinates, on which its rasterizer does not return. No loss or metric
// worth reading is that large; such a point is left out like a NaN.
const maxMagnitude = 1e150

func drawable(v float64) bool { return isFinite(v) && math.Abs(v) <= maxMagnitude }

// yRange is a linear range covering every drawable point of ss with 5%
// margins; a flat series gets a band around its value. ok is false when
// there is no drawable point (the range is then [0,1]).
func yRange(ss []Series) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, pt := range finite(s.X, s.Y) {
			lo, hi = math.Min(lo, pt.Y), math.Max(hi, pt.Y)
			ok = true
		}
	}
	if !ok {
		return 0, 1, false
	}
	lo, hi = pad(lo, hi)
	return lo, hi, true
}

// pad widens [lo,hi] by 5% on each side, or around a single value by 5% of
// its size (0.5 around zero). Computed as hi*m - lo*m so that values near
// the float64 limit do not overflow to infinity.
func pad(lo, hi float64) (float64, float64) {
	const m = 0.05
	d := hi*m - lo*m
	if d == 0 {
		d = math.Abs(lo) * m
		if d == 0 {
			d = 0.5
		}
	}
	if l, h := lo-d, hi+d; isFinite(l) && isFinite(h) {
		return l, h
	}
	return lo, hi
}

// xRange is the shared x range of a figure.
func xRange(panels []Panel, o Options) (float64, float64) {
	if o.XFixed && o.XMin < o.XMax {
		return o.XMin, o.XMax
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range panels {
		for _, s := range p.Series {
			for _, pt := range finite(s.X, s.Y) {
				lo, hi = math.Min(lo, pt.X), math.Max(hi, pt.X)
			}
		}
	}
	if lo > hi { // no points at all
		return 0, 1
	}
	if o.EpochTicks {
		lo, hi = math.Min(0, math.Floor(lo)), math.Ceil(hi)
		if hi <= lo {
			hi = lo + 1
		}
		return lo, hi
	}
	if lo == hi {
		return pad(lo, hi)
	}
	return lo, hi
}

// epochTicks labels whole epochs: every epoch for short runs, every 2, 5,
// 10, 20, 50, ... for longer ones (at most about 8 labels), with unlabelled
// minor ticks at the epochs in between while there are few enough.
type epochTicks struct{}

func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || !isFinite(lo) || !isFinite(hi) {
		return nil
	}
	span := hi - lo
	step := 1.0
	for i := 0; span/step > 8; i++ {
		step *= []float64{2, 2.5, 2}[i%3] // 1, 2, 5, 10, 20, 50, ...
	}
	var ticks []plot.Tick
	for e := math.Ceil(lo/step) * step; e <= hi; e += step {
		ticks = append(ticks, plot.Tick{Value: e, Label: fmt.Sprintf("%.0f", e)})
	}
	if step > 1 && span <= 60 {
		for e := math.Ceil(lo); e <= hi; e++ {
			if math.Mod(e, step) != 0 {
				ticks = append(ticks, plot.Tick{Value: e})
			}
		}
	}
	return ticks
}

// noData marks an empty panel.
type noData struct{}

func (noData) Plot(c draw.Canvas, _ *plot.Plot) {
	sty := textStyle(labelSize)
	sty.Color = midGrey
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
	c.FillText(sty, c.Center(), "no data")
}
