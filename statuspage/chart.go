package statuspage

import (
	"fmt"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartWidth  = 600
	chartHeight = 120
	chartGap    = 2
	maxBarWidth = 24 // a few reconciles do not fill the chart with wide bars
)

// chart is a bar chart of reconcile durations, drawn by the template as inline SVG: presentation
// attributes and classes only, so the Content-Security-Policy needs no inline style.
type chart struct {
	Width, Height int
	Bars          []bar
	Max           string // the duration the top of the chart stands for
	Empty         bool
}

type bar struct {
	X, Y, W, H int
	Error      bool
	Title      string // shown as a tooltip: when, what, how long
}

// durationChart draws one bar per reconcile, oldest on the left, scaled to the longest.
func durationChart(rs []Reconcile) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Empty: len(rs) == 0}
	if c.Empty {
		return c
	}
	longest := time.Millisecond
	for _, r := range rs {
		longest = max(longest, r.Took)
	}
	c.Max = fmt.Sprintf("%.2f s", longest.Seconds())
	w := min(max(chartWidth/len(rs)-chartGap, 1), maxBarWidth)
	for i, r := range rs {
		h := max(int(float64(chartHeight)*float64(r.Took)/float64(longest)), 1)
		outcome := "ok"
		if r.Error {
			outcome = "error"
		}
		c.Bars = append(c.Bars, bar{
			X: i * (w + chartGap), Y: chartHeight - h, W: w, H: h, Error: r.Error,
			Title: fmt.Sprintf("%s %s: %.2f s, %s", r.At.UTC().Format("15:04:05"), r.Key, r.Took.Seconds(), outcome),
		})
	}
	return c
}
