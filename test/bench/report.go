package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/migratekit/ossea-operator/test/world"
)

// report is one scenario's numbers in the order they are printed.
type report struct {
	Scenario string         `json:"scenario"`
	Machine  machine        `json:"machine"`
	Params   map[string]any `json:"params"`
	Results  map[string]any `json:"results"`
	order    []row
}

type row struct {
	key  string
	text string
}

type machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpuModel"`
	MemGiB   int    `json:"memGiB"`
	Go       string `json:"go"`
	Kernel   string `json:"kernel"`
}

// newReport starts a scenario's report; its params are the options every scenario has,
// plus extra.
func newReport(scenario string, o options, extra map[string]any) *report {
	params := map[string]any{
		"n": o.n, "vms": o.vms, "perVM": o.perVM, "jobLatency": o.jobLatency.String(), "qps": o.qps, "burst": o.burst,
		"simQPS": max(o.simQPS, 0), "managerArgs": o.managerArgs.String(),
	}
	for k, v := range extra {
		params[k] = v
	}
	return &report{Scenario: scenario, Machine: thisMachine(), Params: params, Results: map[string]any{}}
}

// add records a result: value goes into the JSON as is, text (or the value) into the table.
func (r *report) add(key string, value any, text string) {
	r.Results[key] = value
	if text == "" {
		text = fmt.Sprint(value)
	}
	r.order = append(r.order, row{key, text})
}

// addCounts records a map of counts, and one table row per key, sorted.
// addPerVolume reports the growth of API server counters from before to after, per volume:
// the total as key, and by resource as key+"ByResource".
func (r *report) addPerVolume(key string, before, after map[string]float64, n int) {
	byResource := world.Sub(after, before)
	total := 0.0
	for k, v := range byResource {
		byResource[k] = v / float64(n)
		total += v / float64(n)
	}
	r.add(key, round(total, 2), "")
	r.addCounts(key+"ByResource", byResource, "")
}

func (r *report) addCounts(key string, counts map[string]float64, unit string) {
	rounded := map[string]float64{}
	keys := make([]string, 0, len(counts))
	for k, v := range counts {
		rounded[k] = round(v, 2)
		keys = append(keys, k)
	}
	sort.Strings(keys)
	r.Results[key] = rounded
	if len(keys) == 0 {
		r.order = append(r.order, row{key, "none"})
	}
	for _, k := range keys {
		r.order = append(r.order, row{key + "." + k, fmt.Sprintf("%.2f %s", counts[k], unit)})
	}
}

func (r *report) print(out io.Writer) {
	fmt.Fprintf(out, "\n== bench %s on %d CPUs (%s), %d GiB, %s\n", r.Scenario, r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemGiB, r.Machine.Go)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var params []string
	for _, k := range keys {
		params = append(params, fmt.Sprintf("%s=%v", k, r.Params[k]))
	}
	fmt.Fprintf(tw, "params\t%s\n", strings.Join(params, " "))
	for _, row := range r.order {
		fmt.Fprintf(tw, "%s\t%s\n", row.key, row.text)
	}
	tw.Flush()
	b, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(out, `{"error":"cannot encode the report"}`)
		return
	}
	fmt.Fprintln(out, string(b))
}

func thisMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemGiB = int((kb + 1<<19) >> 20)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}

func secs(d time.Duration) float64 { return round(d.Seconds(), 2) }

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func mib(b int64) float64 { return round(float64(b)/(1<<20), 1) }
