// Command load drives any envoy.service.auth.v3.Authorization/Check endpoint
// with a realistic Cloud Connector request mix at a fixed concurrency for a
// fixed time. It checks the gRPC status of every call and, with --check, the
// decision of every response against what the request was built to get, and
// prints throughput, latency percentiles, errors, and the target's CPU seconds
// and peak RSS (read from /proc when --target-pid is given).
//
// Requests are encoded once, before the run, and sent as raw bytes, so the
// load generator spends its CPU on the transport, not on protobuf encoding.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

const (
	checkMethod = "/envoy.service.auth.v3.Authorization/Check"
	// callTimeout bounds one Check; a slower answer counts as an error.
	callTimeout = 5 * time.Second
)

type options struct {
	target      string
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	conns       int
	maxRequests int64
	check       bool
	targetPID   int
	jsonOut     bool
	label       string
	metricsURL  string
	mix         mixOptions
	// Open loop (openloop.go): rate > 0 replaces the closed loop.
	rate           float64
	callTimeout    time.Duration
	maxOutstanding int
	stepAfter      time.Duration
	stepRate       float64
}

func main() {
	var o options
	flag.StringVar(&o.target, "target", "127.0.0.1:9191", "ext_authz gRPC address")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured run length")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured closed-loop warm-up at --concurrency before the run, open loop too (fills caches)")
	flag.IntVar(&o.concurrency, "concurrency", 32, "requests in flight")
	flag.IntVar(&o.conns, "conns", 2, "HTTP/2 connections the requests are spread over")
	flag.Int64Var(&o.maxRequests, "max-requests", 5_000_000, "stop after this many measured requests (bounds a run)")
	flag.BoolVar(&o.check, "check", true, "check each response's decision against the expected one (off for a no-op target)")
	flag.IntVar(&o.targetPID, "target-pid", 0, "PID of the target, to report its CPU seconds and peak RSS from /proc")
	flag.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of a table")
	flag.StringVar(&o.label, "label", "", "name of the target in the output")
	flag.StringVar(&o.metricsURL, "metrics-url", "", "ccauthz /metrics URL, to report its cache sizes after the run")
	flag.StringVar(&o.mix.keyFile, "key", "", "PEM private key of an issuer the target trusts (required)")
	flag.StringVar(&o.mix.issuer, "issuer", "", "`iss` of the tokens (the issuer the key belongs to)")
	flag.StringVar(&o.mix.audience, "audience", "gitlab-ai-gateway", "token audience")
	flag.StringVar(&o.mix.backend, "backend", "", "context_extensions[backend] to send (empty: none)")
	flag.IntVar(&o.mix.tokens, "tokens", 1000, "distinct tokens (one instance each)")
	flag.IntVar(&o.mix.users, "users", 5, "distinct global user ids per instance")
	flag.IntVar(&o.mix.denyPercent, "deny-percent", 10, "share of requests built to be denied")
	flag.IntVar(&o.mix.requests, "requests", 20000, "distinct pre-encoded requests cycled through")
	flag.StringVar(&o.mix.mix, "mix", mixCloud, "workload: cloud, single, realistic or adversarial (benchmarks/README.md)")
	flag.BoolVar(&o.mix.sequential, "sequential", false, "request i uses token i mod --tokens (one pass presents every token)")
	flag.Float64Var(&o.rate, "rate", 0, "open loop: start requests at this fixed rate (req/s) regardless of answers; 0: closed loop at --concurrency")
	flag.DurationVar(&o.callTimeout, "call-timeout", callTimeout, "open loop: deadline of each call (sent as grpc-timeout, as Envoy's ext_authz timeout is)")
	flag.IntVar(&o.maxOutstanding, "max-outstanding", 50000, "open loop: bound on calls in flight in the generator (bounds its memory)")
	flag.DurationVar(&o.stepAfter, "step-after", 0, "open loop: after this long, offer --step-rate instead (0: never)")
	flag.Float64Var(&o.stepRate, "step-rate", 0, "open loop: the rate after --step-after")
	printPort := flag.Bool("free-port", false, "print a free loopback port and exit (for scripts)")
	summary := flag.String("summarize", "", "summarize a file of -json results (one per line) and exit")
	baseline := flag.String("baseline", "noop", "with -summarize: the label the others are compared to")
	var plan planOptions
	planMode := flag.Bool("plan-rate", false, "print the soak's rate from -closed and -calibration results and exit: \"RATE CLOSED OPEN_MAX BASIS\" (rate.go)")
	flag.StringVar(&plan.closedFile, "closed", "", "with -plan-rate: -json result of the closed-loop capacity run")
	flag.StringVar(&plan.calibrationFile, "calibration", "", "with -plan-rate: -json result of the open-loop calibration run (with -target-pid)")
	flag.Float64Var(&plan.percent, "percent", 80, "with -plan-rate: the soak's share of the rate basis, in %")
	flag.StringVar(&plan.basis, "basis", basisMin, "with -plan-rate: min (of the closed-loop capacity and the open-loop maximum) or closed")
	flag.IntVar(&plan.cores, "cores", runtime.NumCPU(), "with -plan-rate: CPUs of the box (nproc), those an unpinned side runs on")
	flag.StringVar(&plan.serverCPUs, "server-cpus", "", "with -plan-rate: the target's pinned CPU list (taskset -c form; empty: unpinned)")
	flag.StringVar(&plan.loadCPUs, "load-cpus", "", "with -plan-rate: the generator's pinned CPU list (empty: unpinned)")
	flag.Parse()
	o.mix.lifetime = o.warmup + o.duration + time.Minute

	switch {
	case *printPort:
		if err := freePort(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	case *planMode:
		if err := planRate(os.Stdout, plan); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	case *summary != "":
		if err := summarize(os.Stdout, *summary, *baseline); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}

	runner := run
	if o.rate > 0 {
		runner = runOpen
	}
	if err := runner(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// rawCodec sends pre-encoded request bytes as they are and decodes responses
// with protobuf.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// result is what one run measured.
type result struct {
	Label         string  `json:"label"`
	Target        string  `json:"target"`
	Concurrency   int     `json:"concurrency"`
	Seconds       float64 `json:"seconds"`
	Requests      int64   `json:"requests"`
	RPS           float64 `json:"rps"`
	Errors        int64   `json:"errors"`
	WrongAnswer   int64   `json:"wrong_decisions"`
	Allowed       int64   `json:"allowed"`
	Denied        int64   `json:"denied"`
	P50ms         float64 `json:"p50_ms"`
	P90ms         float64 `json:"p90_ms"`
	P99ms         float64 `json:"p99_ms"`
	P999ms        float64 `json:"p999_ms"`
	TargetCPU     float64 `json:"target_cpu_seconds,omitempty"`
	TargetCPUPerK float64 `json:"target_cpu_ms_per_1k_requests,omitempty"`
	// LoadCPUPerK is the generator's own CPU per 1 000 answered checks.
	LoadCPUPerK      float64 `json:"load_cpu_ms_per_1k_requests,omitempty"`
	TargetPeakRSSMiB float64 `json:"target_peak_rss_mib,omitempty"`
	TargetRSSMiB     float64 `json:"target_rss_mib,omitempty"`
	// Cache sizes scraped from the target's /metrics (ccauthz only).
	TokenCacheEntries    float64 `json:"token_cache_entries,omitempty"`
	DecisionCacheEntries float64 `json:"decision_cache_entries,omitempty"`
	// DecisionCacheHitRatio is hits / (hits + misses) of the decision
	// cache since the target started (warm-up and earlier rounds included).
	DecisionCacheHitRatio float64 `json:"decision_cache_hit_ratio,omitempty"`
	FirstError            string  `json:"first_error,omitempty"`
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.concurrency < 1 || o.conns < 1 {
		return errors.New("--concurrency and --conns must be at least 1")
	}
	reqs, err := buildMix(o.mix, time.Now())
	if err != nil {
		return err
	}
	clients, err := dial(o)
	if err != nil {
		return err
	}
	defer closeAll(clients)

	if o.warmup > 0 {
		if _, err := phase(ctx, o, clients, reqs, o.warmup, false); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	cpu0, _ := procCPUSeconds(o.targetPID)
	own0, _ := procCPUSeconds(os.Getpid())
	res, err := phase(ctx, o, clients, reqs, o.duration, true)
	if err != nil {
		return err
	}
	if own1, err := procCPUSeconds(os.Getpid()); err == nil && res.Requests > 0 {
		res.LoadCPUPerK = (own1 - own0) * 1e6 / float64(res.Requests)
	}
	if o.targetPID > 0 {
		if cpu1, err := procCPUSeconds(o.targetPID); err == nil {
			res.TargetCPU = cpu1 - cpu0
			if res.Requests > 0 {
				res.TargetCPUPerK = res.TargetCPU * 1000 / float64(res.Requests) * 1000
			}
		}
		if rss, err := procPeakRSS(o.targetPID); err == nil {
			res.TargetPeakRSSMiB = float64(rss) / (1 << 20)
		}
		if rss, err := procRSS(o.targetPID); err == nil {
			res.TargetRSSMiB = float64(rss) / (1 << 20)
		}
	}
	if o.metricsURL != "" {
		m, err := scrape(o.metricsURL)
		if err != nil {
			return err
		}
		res.TokenCacheEntries = m["ccauthz_token_cache_entries"]
		res.DecisionCacheEntries = m["ccauthz_decision_cache_entries"]
		if h, mi := m["ccauthz_decision_cache_hits_total"], m["ccauthz_decision_cache_misses_total"]; h+mi > 0 {
			res.DecisionCacheHitRatio = h / (h + mi)
		}
	}
	res.Label, res.Target, res.Concurrency = o.label, o.target, o.concurrency
	return report(out, res, o.jsonOut)
}

// phase runs the workers for d and, when measure is set, collects latencies.
func phase(ctx context.Context, o options, clients []*grpc.ClientConn, reqs []request, d time.Duration, measure bool) (result, error) {
	// Calls are not cancelled when the phase ends: workers stop taking new
	// requests and the calls in flight finish, so the end of a phase is never
	// counted as an error. A call that takes longer than callTimeout is.
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	var (
		next      atomic.Int64
		count     atomic.Int64
		errs      atomic.Int64
		wrong     atomic.Int64
		allowed   atomic.Int64
		denied    atomic.Int64
		firstErr  atomic.Value
		wg        sync.WaitGroup
		latencies = make([][]time.Duration, o.concurrency)
	)
	start := time.Now()
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cc := clients[w%len(clients)]
			var lat []time.Duration
			if measure {
				lat = make([]time.Duration, 0, 1<<14)
			}
			for !stop.Load() && ctx.Err() == nil {
				n := next.Add(1)
				if measure && n > o.maxRequests {
					stop.Store(true)
					break
				}
				r := &reqs[int(n)%len(reqs)]
				resp := new(authv3.CheckResponse)
				callCtx, cancel := context.WithTimeout(ctx, callTimeout)
				t0 := time.Now()
				err := cc.Invoke(callCtx, checkMethod, &r.encoded, resp)
				el := time.Since(t0)
				cancel()
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				count.Add(1)
				if measure {
					lat = append(lat, el)
				}
				ok := resp.GetStatus().GetCode() == int32(codes.OK)
				if ok {
					allowed.Add(1)
				} else {
					denied.Add(1)
				}
				if o.check && ok != r.wantAllow {
					if wrong.Add(1) == 1 {
						firstErr.CompareAndSwap(nil, fmt.Sprintf("request %q: want allow=%v, got status %d", r.name, r.wantAllow, resp.GetStatus().GetCode()))
					}
				}
			}
			latencies[w] = lat
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)

	all := slices.Concat(latencies...)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res := result{
		Seconds:     elapsed.Seconds(),
		Requests:    count.Load(),
		Errors:      errs.Load(),
		WrongAnswer: wrong.Load(),
		Allowed:     allowed.Load(),
		Denied:      denied.Load(),
		P50ms:       pct(all, 0.50),
		P90ms:       pct(all, 0.90),
		P99ms:       pct(all, 0.99),
		P999ms:      pct(all, 0.999),
	}
	res.RPS = float64(res.Requests) / elapsed.Seconds()
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
	}
	return res, nil
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func report(w io.Writer, r result, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	fmt.Fprintf(w, "target        %s %s\n", r.Label, r.Target)
	fmt.Fprintf(w, "requests      %d in %.1fs (%d allowed, %d denied) at concurrency %d\n", r.Requests, r.Seconds, r.Allowed, r.Denied, r.Concurrency)
	fmt.Fprintf(w, "throughput    %.0f req/s\n", r.RPS)
	fmt.Fprintf(w, "latency ms    p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f\n", r.P50ms, r.P90ms, r.P99ms, r.P999ms)
	fmt.Fprintf(w, "errors        %d gRPC errors, %d wrong decisions\n", r.Errors, r.WrongAnswer)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error   %s\n", r.FirstError)
	}
	if r.TargetCPU > 0 {
		fmt.Fprintf(w, "target cpu    %.2fs (%.1f ms per 1k requests)\n", r.TargetCPU, r.TargetCPUPerK)
	}
	if r.TargetPeakRSSMiB > 0 {
		fmt.Fprintf(w, "target rss    %.1f MiB peak, %.1f MiB now\n", r.TargetPeakRSSMiB, r.TargetRSSMiB)
	}
	if r.TokenCacheEntries > 0 || r.DecisionCacheEntries > 0 {
		fmt.Fprintf(w, "caches        %.0f verified tokens, %.0f decisions\n", r.TokenCacheEntries, r.DecisionCacheEntries)
	}
	if r.Errors > 0 || r.WrongAnswer > 0 {
		return fmt.Errorf("%d errors and %d wrong decisions", r.Errors, r.WrongAnswer)
	}
	return nil
}

// dial opens o.conns connections to the target that send pre-encoded
// CheckRequests (rawCodec).
func dial(o options) ([]*grpc.ClientConn, error) {
	clients := make([]*grpc.ClientConn, 0, o.conns)
	for range o.conns {
		cc, err := grpc.NewClient(o.target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			closeAll(clients)
			return nil, fmt.Errorf("connect %s: %w", o.target, err)
		}
		clients = append(clients, cc)
	}
	return clients, nil
}

func closeAll(clients []*grpc.ClientConn) {
	for _, cc := range clients {
		cc.Close()
	}
}
