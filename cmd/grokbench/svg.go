package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
)

// Chart geometry. Percentiles run along a log scale of 1/(1-p), as in
// HdrHistogram plots, so the tail gets as much room as the median; latency
// runs along a log scale too, so a 0.3 ms median and a 40 ms stall both show.
const (
	chartW      = 880
	panelH      = 250
	padL, padR  = 64, 24
	padT, padB  = 34, 40
	legendH     = 34
	maxDecades  = 4.0  // 99.99th percentile
	xStep       = 0.01 // in decades
	chartPanels = 4
)

func seriesColor(name string) string {
	switch name {
	case "floor":
		return "#8c8c8c"
	case "hop":
		return "#2ca02c"
	case "proxy":
		return "#1f77b4"
	}
	return "#e6550d"
}

// svg draws the latency distributions: non-streaming closed and open loop,
// and the time to first event of chat and Responses streams.
func (r *report) svg() []byte {
	var b bytes.Buffer
	h := legendH + chartPanels*(panelH+padT+padB)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, h, chartW, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, h)
	// Legend, one entry per target spread over the plot's width.
	x, step := padL, (chartW-padL-padR)/max(1, len(r.Targets))
	for _, t := range r.Targets {
		fmt.Fprintf(&b, `<line x1="%d" y1="18" x2="%d" y2="18" stroke="%s" stroke-width="3"/><text x="%d" y="22">%s</text>`+"\n",
			x, x+24, seriesColor(t.Name), x+30, html.EscapeString(t.Label))
		x += step
	}
	panels := []struct {
		title string
		get   func(*targetReport) *phaseReport
	}{
		{fmt.Sprintf("Non-streaming latency, closed loop, %d connections", r.cfg.concurrency), func(t *targetReport) *phaseReport { return t.Closed }},
		{fmt.Sprintf("Non-streaming latency from intended send, open loop, %s req/s", thousands(r.cfg.rate)), func(t *targetReport) *phaseReport { return t.Open }},
		{fmt.Sprintf("Streaming chat completions, time to first event, %d concurrent streams", r.cfg.streamConc), func(t *targetReport) *phaseReport { return t.Stream }},
		{fmt.Sprintf("Streaming Responses API, time to first event, %d concurrent streams", r.cfg.streamConc), func(t *targetReport) *phaseReport { return t.Responses }},
	}
	for i, p := range panels {
		var series []plotSeries
		for _, t := range r.Targets {
			if ph := p.get(t); ph != nil && len(ph.sorted) > 0 {
				series = append(series, plotSeries{t.Name, ph.sorted})
			}
		}
		top := legendH + i*(panelH+padT+padB) + padT
		panel(&b, p.title, top, series)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

type plotSeries struct {
	name string
	s    samples // sorted
}

// panel draws one plot whose plotting area starts at y = top.
func panel(b *bytes.Buffer, title string, top int, series []plotSeries) {
	x0, x1 := float64(padL), float64(chartW-padR)
	y0, y1 := float64(top+panelH), float64(top)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", padL, top-12, html.EscapeString(title))
	if len(series) == 0 {
		return
	}
	// Ranges: x to the deepest percentile the data supports, y over all values.
	xmax := 0.0
	lo, hi := math.Inf(1), 0.0
	for _, s := range series {
		xmax = max(xmax, math.Min(maxDecades, math.Log10(float64(len(s.s)))))
		lo = min(lo, ms(s.s.pct(0)))
		hi = max(hi, ms(s.s.pct(1-math.Pow(10, -maxDecades))))
	}
	xmax = math.Max(xmax, 1)
	lo = math.Max(lo, 0.001)
	ylo := math.Pow(10, math.Floor(math.Log10(lo)))
	yhi := math.Pow(10, math.Ceil(math.Log10(math.Max(hi, ylo*10))))
	sx := func(d float64) float64 { return x0 + (x1-x0)*d/xmax }
	sy := func(v float64) float64 {
		v = math.Max(v, ylo)
		return y0 - (y0-y1)*(math.Log10(v)-math.Log10(ylo))/(math.Log10(yhi)-math.Log10(ylo))
	}
	// Grid and axes.
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#ccc"/>`+"\n", x0, y1, x1-x0, y0-y1)
	for d := ylo; d <= yhi*1.0001; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := d * m
			if v > yhi*1.0001 {
				break
			}
			y := sy(v)
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="%s"/><text x="%.0f" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n",
				x0, y, x1, y, stroke, x0-6, y+4, trimFloat(v))
		}
	}
	fmt.Fprintf(b, `<text x="14" y="%.0f" transform="rotate(-90 14 %.0f)" text-anchor="middle" fill="#555">ms (log scale)</text>`+"\n", (y0+y1)/2, (y0+y1)/2)
	for _, tick := range []struct {
		d     float64
		label string
	}{{0, "0%"}, {math.Log10(2), "50%"}, {1, "90%"}, {2, "99%"}, {3, "99.9%"}, {4, "99.99%"}} {
		if tick.d > xmax+1e-9 {
			break
		}
		x := sx(tick.d)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/><text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%s</text>`+"\n",
			x, y1, x, y0, x, y0+16, tick.label)
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle" fill="#555">percentile</text>`+"\n", (x0+x1)/2, y0+32)
	// One line per target, with its p50 and p99 marked.
	for _, s := range series {
		limit := math.Min(xmax, math.Log10(float64(len(s.s))))
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="`, seriesColor(s.name))
		for d := 0.0; d <= limit+1e-9; d += xStep {
			fmt.Fprintf(b, "%.1f,%.1f ", sx(d), sy(ms(s.s.pct(1-math.Pow(10, -d)))))
		}
		b.WriteString("\"/>\n")
		for _, q := range []float64{0.5, 0.99} {
			d := -math.Log10(1 - q)
			if d <= limit {
				v := ms(s.s.pct(q))
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s p%g %.3f ms</title></circle>`+"\n",
					sx(d), sy(v), seriesColor(s.name), s.name, q*100, v)
			}
		}
	}
}

// trimFloat prints a tick value without needless digits.
func trimFloat(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%g", math.Round(v))
	}
	return fmt.Sprintf("%g", math.Round(v*1000)/1000)
}
