package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
)

// freePort prints a free loopback port (for scripts).
func freePort(w io.Writer) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	_, err = fmt.Fprintln(w, l.Addr().(*net.TCPAddr).Port)
	return err
}

// summarize reads the JSON results of several runs and prints, per label, the
// median of each figure and its ratio to the baseline label's median.
func summarize(w io.Writer, path, baseline string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	byLabel := map[string][]result{}
	var order []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if _, seen := byLabel[r.Label]; !seen {
			order = append(order, r.Label)
		}
		byLabel[r.Label] = append(byLabel[r.Label], r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	base, ok := byLabel[baseline]
	if !ok {
		return fmt.Errorf("%s: no runs labelled %q", path, baseline)
	}
	fields := []struct {
		name string
		get  func(result) float64
	}{
		{"req/s", func(r result) float64 { return r.RPS }},
		{"p50 ms", func(r result) float64 { return r.P50ms }},
		{"p90 ms", func(r result) float64 { return r.P90ms }},
		{"p99 ms", func(r result) float64 { return r.P99ms }},
		{"p99.9 ms", func(r result) float64 { return r.P999ms }},
		{"cpu ms/1k", func(r result) float64 { return r.TargetCPUPerK }},
		{"peak rss MiB", func(r result) float64 { return r.TargetPeakRSSMiB }},
	}
	fmt.Fprintf(w, "\nmedians over %d rounds (ratio to %s in brackets)\n", len(base), baseline)
	fmt.Fprintf(w, "%-10s", "target")
	for _, fl := range fields {
		fmt.Fprintf(w, " %18s", fl.name)
	}
	fmt.Fprintln(w)
	for _, label := range order {
		fmt.Fprintf(w, "%-10s", label)
		for _, fl := range fields {
			m, b := median(byLabel[label], fl.get), median(base, fl.get)
			if label == baseline || b == 0 {
				fmt.Fprintf(w, " %18.3f", m)
				continue
			}
			fmt.Fprintf(w, " %10.3f (%4.2fx)", m, m/b)
		}
		fmt.Fprintln(w)
	}
	var errs int64
	for _, rs := range byLabel {
		for _, r := range rs {
			errs += r.Errors + r.WrongAnswer
		}
	}
	if errs > 0 {
		return fmt.Errorf("%d errors or wrong decisions across the runs", errs)
	}
	return nil
}

func median(rs []result, get func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = get(r)
	}
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// scrape reads a Prometheus text exposition and sums each metric name's
// samples (labels ignored).
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			if j := strings.LastIndexByte(line, '}'); j >= 0 {
				rest = strings.TrimSpace(line[j+1:])
			}
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out, sc.Err()
}
