package main

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
)

// mib writes a byte count in KiB, MiB or GiB.
func mib(b int64) string {
	switch f := float64(b); {
	case f >= 10<<30:
		return fmt.Sprintf("%.1f GiB", f/(1<<30))
	case f >= 10<<20:
		return fmt.Sprintf("%.0f MiB", f/(1<<20))
	case f >= 1<<20:
		return fmt.Sprintf("%.1f MiB", f/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10))
}

// perItem is bytes per acknowledged item.
func perItem(b, n int64) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f B", float64(b)/float64(n))
}

// si writes a count with k/M suffixes.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return trimZero(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case v >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	}
	return trimZero(fmt.Sprintf("%.1f", v))
}

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func signalRuns(res Result, sig string) []Run {
	var out []Run
	for _, r := range res.Runs {
		if r.Signal == sig {
			out = append(out, r)
		}
	}
	return out
}

// markdown is the result as tables: one per signal, a row per system and size, then Sprout's ratios against
// each peer measured in the same invocation.
func markdown(res Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run started %s on %d CPUs (%s), %.0f GiB, Linux %s, %s.\n\n", res.Started, res.Machine.CPUs,
		res.Machine.Model, float64(res.Machine.MemBytes)/(1<<30), res.Machine.Kernel, res.Machine.Go)
	fmt.Fprintf(&b, "```sh\n%s\n```\n", res.Command)
	for _, sig := range []string{"traces", "logs", "metrics"} {
		runs := signalRuns(res, sig)
		if len(runs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n### %s\n\n", sig)
		var qnames []string
		for _, r := range runs {
			for _, q := range r.Queries {
				if !contains(qnames, q.Name) {
					qnames = append(qnames, q.Name)
				}
			}
		}
		b.WriteString("| size | system | acked / offered | items/s | server CPU-s per million | peak RSS | disk after load / after stop (per item) | all acked queryable | ")
		for _, q := range qnames {
			fmt.Fprintf(&b, "%s p50 | ", q)
		}
		b.WriteString("load avg before → after |\n|")
		for i := 0; i < 9+len(qnames); i++ {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, r := range runs {
			if r.Error != "" && r.Acked == 0 {
				fmt.Fprintf(&b, "| %d× | %s | error: %s |%s\n", r.Scale, r.System, oneLine(r.Error), strings.Repeat(" |", 6+len(qnames)))
				continue
			}
			fmt.Fprintf(&b, "| %d× | %s | %s / %s %s | %s | %.2f | %s | %s / %s (%s) | %s | ", r.Scale, r.System, si(float64(r.Acked)),
				si(float64(r.Offered)), r.Unit, si(r.ItemsPerSec), r.CPUPerMillion, mib(r.PeakRSS), mib(r.DiskBytes), mib(r.DiskShutdown), perItem(r.DiskShutdown, r.Acked), countText(r))
			for _, name := range qnames {
				b.WriteString(queryText(r, name) + " | ")
			}
			fmt.Fprintf(&b, "%.1f → %.1f |\n", r.LoadBefore[0], r.LoadAfter[0])
		}
		b.WriteString("\nSprout ÷ peer, same invocation (rate: higher is better; the rest: lower is better):\n\n")
		b.WriteString("| size | peer | items/s | CPU-s per million | peak RSS | disk after stop |")
		for _, q := range qnames {
			fmt.Fprintf(&b, " %s |", q)
		}
		b.WriteString("\n|---|---|---|---|---|---|" + strings.Repeat("---|", len(qnames)) + "\n")
		for _, r := range runs {
			if r.System == "sprout" || r.Acked == 0 {
				continue
			}
			sp := find(runs, "sprout", r.Scale)
			if sp == nil || sp.Acked == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %d× | %s | %s | %s | %s | %s |", r.Scale, r.System, ratio(sp.ItemsPerSec, r.ItemsPerSec),
				ratio(sp.CPUPerMillion, r.CPUPerMillion), ratio(float64(sp.PeakRSS), float64(r.PeakRSS)), ratio(float64(sp.DiskShutdown), float64(r.DiskShutdown)))
			for _, name := range qnames {
				a, c := queryP50(*sp, name), queryP50(r, name)
				if a < 0 || c < 0 {
					b.WriteString(" – |")
				} else {
					fmt.Fprintf(&b, " %s |", ratio(a, c))
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func find(runs []Run, system string, scale int) *Run {
	for i := range runs {
		if runs[i].System == system && runs[i].Scale == scale {
			return &runs[i]
		}
	}
	return nil
}

func ratio(a, b float64) string {
	r := a / b
	switch {
	case b == 0 || math.IsNaN(r):
		return "–"
	case r < 0.1:
		return fmt.Sprintf("%.2g×", r) // two significant digits, not 0.00×
	}
	return fmt.Sprintf("%.2f×", r)
}

func countText(r Run) string {
	s := "yes"
	if !r.Count.OK {
		s = fmt.Sprintf("**no**: found %s, acknowledged %s", si(float64(r.Count.Got)), si(float64(r.Count.Want)))
		if r.Count.Got > r.Count.Want {
			s += " (more than acknowledged: counted twice, or stored although refused)"
		}
		if r.Count.Err != "" {
			s += " (" + oneLine(r.Count.Err) + ")"
		}
	} else {
		s += fmt.Sprintf(" (after %.0f s)", r.Count.Seconds)
	}
	if r.Count.Above > 0 {
		s += fmt.Sprintf("; **a poll counted %s**", si(float64(r.Count.Above)))
	}
	if r.Count.Sampled > 0 {
		s += fmt.Sprintf("; by id %d of %d complete", r.Count.Complete, r.Count.Sampled)
	}
	return s
}

func queryP50(r Run, name string) float64 {
	for _, q := range r.Queries {
		if q.Name == name && q.Err == "" && len(q.Runs) > 0 {
			return q.P50
		}
	}
	return -1
}

func queryText(r Run, name string) string {
	for _, q := range r.Queries {
		if q.Name != name {
			continue
		}
		if q.Err != "" {
			return "error: " + oneLine(q.Err)
		}
		s := fmt.Sprintf("%s ms", trimZero(fmt.Sprintf("%.1f", q.P50)))
		if q.P99 > 0 {
			s += fmt.Sprintf(" (p99 %s)", trimZero(fmt.Sprintf("%.1f", q.P99)))
		}
		if q.ServerCPU > 0 {
			s += fmt.Sprintf(" (server CPU %s ms a run)", trimZero(fmt.Sprintf("%.1f", q.ServerCPU)))
		}
		return s + " (" + q.Result + ")"
	}
	return "–"
}

// --- the plot -------------------------------------------------------------------------------------------

type panel struct {
	title string
	value func(Run) (float64, bool)
}

var palette = map[string]string{
	"sprout": "#2e7d32", "tempo": "#c62828", "loki": "#ef6c00", "victorialogs": "#6a1b9a",
	"prometheus": "#e65100", "victoriametrics": "#1565c0",
}

// plot draws one signal's runs as five small panels (ingest rate, CPU per million, peak RSS, disk, latency of
// the first fixed query) against data size, one line per system. Written by hand: no plotting dependency.
func plot(res Result, sig string) string {
	runs := signalRuns(res, sig)
	if len(runs) == 0 {
		return ""
	}
	unit := runs[0].Unit
	firstQ := ""
	for _, r := range runs {
		if len(r.Queries) > 0 {
			firstQ = r.Queries[0].Name
			break
		}
	}
	ok := func(r Run) bool { return r.Acked > 0 }
	panels := []panel{
		{unit + "/s acknowledged", func(r Run) (float64, bool) { return r.ItemsPerSec, ok(r) }},
		{"server CPU-s per million " + unit, func(r Run) (float64, bool) { return r.CPUPerMillion, ok(r) }},
		{"peak RSS, MiB", func(r Run) (float64, bool) { return float64(r.PeakRSS) / (1 << 20), ok(r) }},
		{"disk after stop, MiB", func(r Run) (float64, bool) { return float64(r.DiskShutdown) / (1 << 20), ok(r) }},
		{firstQ + ", p50 ms", func(r Run) (float64, bool) { v := queryP50(r, firstQ); return v, v >= 0 }},
	}
	var systems []string
	var sizes []float64
	for _, r := range runs {
		if !contains(systems, r.System) {
			systems = append(systems, r.System)
		}
		sz := float64(r.Offered)
		found := false
		for _, s := range sizes {
			found = found || s == sz
		}
		if !found {
			sizes = append(sizes, sz)
		}
	}
	sort.Float64s(sizes)
	const pw, ph, ml, mt, mb, gap = 230, 170, 52, 50, 46, 18
	width := len(panels)*(pw+ml+gap) + 20
	height := mt + ph + mb + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="16" font-size="13" font-weight="bold">%s: Sprout and its peers against data size (%s, one server at a time; %s)</text>`+"\n",
		html.EscapeString(sig), html.EscapeString(unit), html.EscapeString(res.Started))
	lx := func(sz float64) float64 {
		if len(sizes) == 1 {
			return pw / 2
		}
		lo, hi := math.Log10(sizes[0]), math.Log10(sizes[len(sizes)-1])
		return 10 + (math.Log10(sz)-lo)/(hi-lo)*(pw-20)
	}
	for i, p := range panels {
		x0 := 10 + i*(pw+ml+gap) + ml
		y0 := mt
		top := 0.0
		for _, r := range runs {
			if v, ok := p.value(r); ok {
				top = math.Max(top, v)
			}
		}
		top = niceCeil(top)
		fmt.Fprintf(&b, `<g transform="translate(%d,%d)">`+"\n", x0, y0)
		fmt.Fprintf(&b, `<text x="%d" y="-8" text-anchor="middle" font-weight="bold">%s</text>`+"\n", pw/2, html.EscapeString(p.title))
		fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", pw, ph)
		for t := 0; t <= 4; t++ {
			v := top * float64(t) / 4
			y := ph - float64(ph)*float64(t)/4
			fmt.Fprintf(&b, `<line x1="0" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="-4" y="%.1f" text-anchor="end">%s</text>`+"\n", pw, y, y, y+4, si(v))
		}
		for _, sz := range sizes {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", lx(sz), ph+14, si(sz))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555">data size (%s)</text>`+"\n", pw/2, ph+30, html.EscapeString(unit))
		for _, sys := range systems {
			color := palette[sys]
			if color == "" {
				color = "#444"
			}
			var pts []string
			for _, r := range runs {
				if r.System != sys {
					continue
				}
				v, ok := p.value(r)
				if !ok || top == 0 {
					continue
				}
				x, y := lx(float64(r.Offered)), float64(ph)-v/top*float64(ph)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %d×: %s</title></circle>`+"\n", x, y, color, sys, r.Scale, si(v))
			}
			if len(pts) > 1 {
				fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
			}
		}
		b.WriteString("</g>\n")
	}
	for i, sys := range systems {
		color := palette[sys]
		if color == "" {
			color = "#444"
		}
		x := 10 + i*150
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, height-16, color, x+16, height-6, sys)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
