package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Open-loop mode (--rate): requests are started at a fixed offered rate
// whether or not earlier ones were answered, as traffic arriving at Envoy
// is. A closed loop (--concurrency) slows down with the target and so can
// never offer more than it serves; overload needs the open loop.

// outcome kinds of one open-loop call.
const (
	kindAnswered = iota + 1 // a decision from the policy
	kindShed                // 503 overloaded or deadline_exceeded, unevaluated, or refused (RESOURCE_EXHAUSTED)
	kindTimeout             // no answer within --call-timeout
	kindError               // any other gRPC error
)

type event struct {
	start   time.Duration // since the run started
	latency time.Duration
	kind    uint8
	wrong   bool
}

// window is one second of an open-loop run.
type window struct {
	Second   int     `json:"second"`
	Sent     int     `json:"sent"`
	Answered int     `json:"answered"`
	Shed     int     `json:"shed"`
	Timeouts int     `json:"timeouts"`
	Errors   int     `json:"errors"`
	P99ms    float64 `json:"p99_ms"`
	RSSMiB   float64 `json:"target_rss_mib,omitempty"`
	// LagMs is how late, at worst in this second, the generator started a
	// request after its due time: its own scheduling delay. A late second
	// means the generator was starved (by the target where they share
	// cores, by other processes or by its own GC) and then sent a burst.
	// The last second's CPU figures are absent (0): the loop ends first.
	LagMs float64 `json:"lag_ms"`
	// TargetCPU and LoadCPU are the cores the target and the generator
	// used in this second (from /proc: CPU seconds per second, at the
	// kernel's 10 ms tick). A second of timeouts with the target under one
	// core on a machine with spare cores was the target starved, not busy.
	TargetCPU float64 `json:"target_cpu,omitempty"`
	LoadCPU   float64 `json:"load_cpu,omitempty"`
	// BoxBusy and BoxSteal are the fractions (0–1) of the whole box's CPU
	// ticks in this second that were busy (user, nice, system, irq,
	// softirq and steal, from /proc/stat) and taken by the hypervisor
	// (steal): a second of misses at a busy box near 1 was the box
	// saturated (by anyone), one with steal was the host taking the CPU.
	BoxBusy  float64 `json:"box_busy"`
	BoxSteal float64 `json:"box_steal"`
}

// openResult is what an open-loop run measured. Latency percentiles are of
// answered checks only.
type openResult struct {
	Label       string  `json:"label"`
	OfferedRPS  float64 `json:"offered_rps"`
	SentRPS     float64 `json:"sent_rps"`
	NotSent     int64   `json:"not_sent"` // --max-outstanding reached: the generator's own limit
	Answered    int64   `json:"answered"`
	AnsweredRPS float64 `json:"answered_rps"`
	Shed        int64   `json:"shed"`
	Timeouts    int64   `json:"timeouts"`
	Errors      int64   `json:"errors"`
	WrongAnswer int64   `json:"wrong_decisions"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	PeakRSSMiB  float64 `json:"target_peak_rss_mib,omitempty"`
	// TargetCPUPerK and LoadCPUPerK are the CPU milliseconds the target
	// (-target-pid) and the generator used per 1 000 checks sent, from the
	// first request until the last answer (warm-up excluded): the open
	// loop's cost, which the soak's rate is planned from (rate.go).
	TargetCPUPerK float64 `json:"target_cpu_ms_per_1k,omitempty"`
	LoadCPUPerK   float64 `json:"load_cpu_ms_per_1k,omitempty"`
	// BoxBusy and BoxSteal are the window fields over the whole run.
	BoxBusy  float64 `json:"box_busy"`
	BoxSteal float64 `json:"box_steal"`
	// Windows comes after every figure of the whole run: soak.sh reads a
	// figure as the first match of its key, and a window has box_busy too.
	Windows    []window `json:"windows"`
	FirstError string   `json:"first_error,omitempty"`
	// WarmupErrors and WarmupWrong are the gRPC errors and wrong decisions
	// of the closed-loop warm-up (--warmup), which is otherwise unmeasured.
	WarmupErrors int64 `json:"warmup_errors"`
	WarmupWrong  int64 `json:"warmup_wrong_decisions"`
}

// secondStats is what the sending loop observed in one second: its worst
// lateness, and (once the second is over) the CPU seconds the target and
// the generator used in it.
type secondStats struct {
	lag          time.Duration
	target, load float64
	// box is the /proc/stat reading at the second's end (in lastCPU) and
	// busy, steal the box's fractions over the second.
	box         boxTicks
	busy, steal float64
}

func runOpen(ctx context.Context, o options, out io.Writer) error {
	if o.rate <= 0 || o.maxOutstanding < 1 {
		return errors.New("--rate and --max-outstanding must be positive")
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
	// The warm-up is the closed loop's (--concurrency, unmeasured): this
	// process's tokens are new to the target (minted now), so without it the
	// first seconds would verify every token and evaluate every decision
	// afresh at a rate measured with warm caches.
	var warm result
	if o.warmup > 0 {
		if warm, err = phase(ctx, o, clients, reqs, o.warmup, false); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	// due is how many requests should have started by el: --rate, then
	// --step-rate after --step-after (to watch the target recover).
	due := func(el time.Duration) int64 {
		if o.stepAfter <= 0 || el <= o.stepAfter {
			return int64(o.rate * el.Seconds())
		}
		return int64(o.rate*o.stepAfter.Seconds() + o.stepRate*(el-o.stepAfter).Seconds())
	}
	total := due(o.duration)
	if total > o.maxRequests {
		return fmt.Errorf("--rate × --duration is %d requests, over --max-requests %d", total, o.maxRequests)
	}
	events := make([]event, total)
	var (
		wg          sync.WaitGroup
		outstanding = make(chan struct{}, o.maxOutstanding)
		notSent     atomic.Int64
		firstErr    atomic.Value
		rssMu       sync.Mutex
		rss         = map[int]float64{}
		perSec      = map[int]secondStats{}
		lastCPU     secondStats
	)
	// dueAt inverts due: when request n was due to start.
	dueAt := func(n int64) time.Duration {
		if o.stepAfter <= 0 || float64(n) <= o.rate*o.stepAfter.Seconds() {
			return time.Duration(float64(n) / o.rate * float64(time.Second))
		}
		left := float64(n) - o.rate*o.stepAfter.Seconds()
		return o.stepAfter + time.Duration(left/o.stepRate*float64(time.Second))
	}
	lastCPU.target, _ = procCPUSeconds(o.targetPID)
	lastCPU.load, _ = procCPUSeconds(os.Getpid())
	lastCPU.box, _ = readProcStat()
	first := lastCPU
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sampled := -1
	for n := int64(0); n < total; {
		<-tick.C
		el := time.Since(start)
		if s := int(el / time.Second); s != sampled {
			if sampled >= 0 {
				// CPU used over the second that just ended.
				st := perSec[sampled]
				now := secondStats{lag: st.lag}
				now.target, _ = procCPUSeconds(o.targetPID)
				now.load, _ = procCPUSeconds(os.Getpid())
				now.box, _ = readProcStat()
				st.target, st.load = now.target-lastCPU.target, now.load-lastCPU.load
				st.busy, st.steal, _ = share(lastCPU.box, now.box)
				perSec[sampled], lastCPU = st, now
			}
			sampled = s
			if o.targetPID > 0 {
				if v, err := procRSS(o.targetPID); err == nil {
					rssMu.Lock()
					rss[s] = float64(v) / (1 << 20)
					rssMu.Unlock()
				}
			}
		}
		if upTo := min(due(el), total); n < upTo {
			if lag := el - dueAt(n+1); lag > perSec[sampled].lag {
				st := perSec[sampled]
				st.lag = lag
				perSec[sampled] = st
			}
		}
		for upTo := min(due(el), total); n < upTo; n++ {
			select {
			case outstanding <- struct{}{}:
			default:
				notSent.Add(1)
				continue
			}
			wg.Add(1)
			go func(n int64, at time.Duration) {
				defer wg.Done()
				defer func() { <-outstanding }()
				r := &reqs[int(n)%len(reqs)]
				resp := new(authv3.CheckResponse)
				callCtx, cancel := context.WithTimeout(ctx, o.callTimeout)
				t0 := time.Now()
				err := clients[int(n)%len(clients)].Invoke(callCtx, checkMethod, &r.encoded, resp)
				ev := event{start: at, latency: time.Since(t0)}
				cancel()
				switch {
				case status.Code(err) == codes.DeadlineExceeded:
					ev.kind = kindTimeout
				case status.Code(err) == codes.ResourceExhausted:
					ev.kind = kindShed // refused before decoding (overload.refuse_streams)
				case err != nil:
					ev.kind = kindError
					firstErr.CompareAndSwap(nil, err.Error())
				default:
					switch resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue() {
					case "overloaded", "deadline_exceeded":
						ev.kind = kindShed
					default:
						ev.kind = kindAnswered
						ev.wrong = o.check && (resp.GetStatus().GetCode() == int32(codes.OK)) != r.wantAllow
					}
				}
				events[n] = ev
			}(n, el)
		}
	}
	sentFor := time.Since(start)
	wg.Wait()
	var last secondStats
	last.target, _ = procCPUSeconds(o.targetPID)
	last.load, _ = procCPUSeconds(os.Getpid())
	last.box, _ = readProcStat()

	res := openResult{Label: o.label, OfferedRPS: float64(total) / o.duration.Seconds(), NotSent: notSent.Load(),
		WarmupErrors: warm.Errors, WarmupWrong: warm.WrongAnswer}
	var answered []time.Duration
	wins := make([]window, int(sentFor/time.Second)+1)
	winLat := make([][]time.Duration, len(wins))
	for i := range wins {
		wins[i].Second = i
		wins[i].RSSMiB = rss[i]
		st := perSec[i]
		wins[i].LagMs = float64(st.lag) / float64(time.Millisecond)
		if o.targetPID > 0 {
			wins[i].TargetCPU = st.target
		}
		wins[i].LoadCPU = st.load
		wins[i].BoxBusy, wins[i].BoxSteal = st.busy, st.steal
	}
	for _, ev := range events {
		if ev.kind == 0 {
			continue // not sent
		}
		w := &wins[min(int(ev.start/time.Second), len(wins)-1)]
		w.Sent++
		switch ev.kind {
		case kindAnswered:
			res.Answered++
			w.Answered++
			answered = append(answered, ev.latency)
			winLat[w.Second] = append(winLat[w.Second], ev.latency)
			if ev.wrong {
				res.WrongAnswer++
			}
		case kindShed:
			res.Shed++
			w.Shed++
		case kindTimeout:
			res.Timeouts++
			w.Timeouts++
		default:
			res.Errors++
			w.Errors++
		}
	}
	for i := range wins {
		slices.Sort(winLat[i])
		wins[i].P99ms = pct(winLat[i], .99)
	}
	slices.Sort(answered)
	sent := total - res.NotSent
	res.SentRPS = float64(sent) / sentFor.Seconds()
	res.AnsweredRPS = float64(res.Answered) / sentFor.Seconds()
	res.P50ms, res.P99ms, res.P999ms = pct(answered, .5), pct(answered, .99), pct(answered, .999)
	if sent > 0 {
		if o.targetPID > 0 {
			res.TargetCPUPerK = (last.target - first.target) * 1e6 / float64(sent)
		}
		res.LoadCPUPerK = (last.load - first.load) * 1e6 / float64(sent)
	}
	res.BoxBusy, res.BoxSteal, _ = share(first.box, last.box)
	res.Windows = wins
	if o.targetPID > 0 {
		if v, err := procPeakRSS(o.targetPID); err == nil {
			res.PeakRSSMiB = float64(v) / (1 << 20)
		}
	}
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
	}
	if o.jsonOut {
		return json.NewEncoder(out).Encode(res)
	}
	fmt.Fprintf(out, "offered       %.0f req/s on average (sent %.0f/s, %d not sent: --max-outstanding)\n", res.OfferedRPS, res.SentRPS, res.NotSent)
	fmt.Fprintf(out, "answered      %d (%.0f/s), p50 %.3f ms p99 %.3f ms p99.9 %.3f ms\n", res.Answered, res.AnsweredRPS, res.P50ms, res.P99ms, res.P999ms)
	fmt.Fprintf(out, "shed          %d; timeouts %d; errors %d; wrong decisions %d\n", res.Shed, res.Timeouts, res.Errors, res.WrongAnswer)
	fmt.Fprintf(out, "cpu           target %.1f, generator %.1f ms per 1k checks; box %.0f %% busy, %.1f %% steal\n",
		res.TargetCPUPerK, res.LoadCPUPerK, res.BoxBusy*100, res.BoxSteal*100)
	if res.WrongAnswer+res.WarmupWrong > 0 {
		return fmt.Errorf("%d wrong decisions (%d in the warm-up)", res.WrongAnswer+res.WarmupWrong, res.WarmupWrong)
	}
	return nil
}
