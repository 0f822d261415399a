package experiment

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// xySeries is one line of a line plot.
type xySeries struct {
	Name string
	X, Y []float64
}

// namedValues is one named set of values: a line in a CDF, a bar series.
type namedValues struct {
	Name   string
	Values []float64
}

const plotW, plotH = 16 * vg.Centimeter, 10 * vg.Centimeter

func newPlot(title, xLabel, yLabel string, logY bool) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// positive replaces values a log axis cannot show with floor.
func positive(v, floor float64) float64 {
	if !(v > floor) || math.IsInf(v, 0) {
		return floor
	}
	return v
}

// saveLines draws one line per series.
func saveLines(path, title, xLabel, yLabel string, series []xySeries, logY bool) error {
	p := newPlot(title, xLabel, yLabel, logY)
	for i, s := range series {
		pts := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			y := s.Y[j]
			if logY {
				y = positive(y, 1e-6)
			}
			pts = append(pts, plotter.XY{X: s.X[j], Y: y})
		}
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Name, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.2)
		l.Dashes = plotutil.Dashes(i % 2)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	if !logY && p.Y.Min > 0 {
		p.Y.Min = 0 // amounts (memory, vCPUs, rates) read best from zero
	}
	p.Legend.Top = false // rising lines leave the lower right free
	p.Legend.YOffs = vg.Centimeter
	return p.Save(plotW, plotH, path)
}

// saveCDF draws the empirical CDF of each series.
func saveCDF(path, title, xLabel string, series []namedValues, logX bool) error {
	p := newPlot(title, xLabel, "fraction of requests at or below", false)
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Y.Min, p.Y.Max = 0, 1
	for i, s := range series {
		if len(s.Values) == 0 {
			continue
		}
		v := slices.Clone(s.Values)
		slices.Sort(v)
		pts := make(plotter.XYs, 0, 2*len(v))
		for j, x := range v {
			if logX {
				x = positive(x, 1e-6)
			}
			pts = append(pts, plotter.XY{X: x, Y: float64(j) / float64(len(v))}, plotter.XY{X: x, Y: float64(j+1) / float64(len(v))})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Name, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / 7)
		l.Width = vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.YOffs = vg.Centimeter
	return p.Save(plotW, plotH, path)
}

// saveCategoryPoints draws each series as points over the categories, the
// series side by side within a category (a log-scale stand-in for grouped
// bars, which cannot start at zero on a log axis).
func saveCategoryPoints(path, title, yLabel string, categories []string, series []namedValues, logY bool) error {
	p := newPlot(title, "", yLabel, logY)
	n := float64(len(series))
	for i, s := range series {
		pts := make(plotter.XYs, 0, len(s.Values))
		for j, y := range s.Values {
			if math.IsNaN(y) {
				continue
			}
			if logY {
				y = positive(y, 1e-6)
			}
			x := float64(j) + (float64(i)-(n-1)/2)*0.6/math.Max(n, 1)
			pts = append(pts, plotter.XY{X: x, Y: y})
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Name, err)
		}
		sc.Color = plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		sc.Radius = vg.Points(4)
		p.Add(sc)
		p.Legend.Add(s.Name, sc)
	}
	p.NominalX(categories...)
	p.X.Min, p.X.Max = -0.5, float64(len(categories))-0.5
	p.Legend.Left = true
	return p.Save(plotW, plotH, path)
}

// saveStackedBars draws one bar per category with the series stacked in
// order (bottom first).
func saveStackedBars(path, title, yLabel string, categories []string, stacks []namedValues) error {
	p := newPlot(title, "", yLabel, false)
	w := vg.Points(math.Max(8, math.Min(40, 300/float64(max(len(categories), 1)))))
	var below *plotter.BarChart
	for i, s := range stacks {
		vals := make(plotter.Values, len(categories))
		for j := range categories {
			if j < len(s.Values) && s.Values[j] > 0 {
				vals[j] = s.Values[j]
			}
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Name, err)
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		if below != nil {
			b.StackOn(below)
		}
		below = b
		p.Add(b)
		p.Legend.Add(s.Name, b)
	}
	p.NominalX(categories...)
	p.X.Tick.Label.Rotation = math.Pi / 6
	p.X.Tick.Label.XAlign = -1
	return p.Save(plotW, plotH, path)
}
