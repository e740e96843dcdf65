package server

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/httpcheck"
)

// TestGateBurst: of a burst of concurrent takers, exactly max get a slot
// while none is returned, and every slot returned can be taken again.
func TestGateBurst(t *testing.T) {
	const limit, takers = 8, 200
	g := &gate{max: limit}
	for round := range 3 {
		var admitted atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range takers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if g.try() {
					admitted.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if n := admitted.Load(); n != limit {
			t.Fatalf("round %d: %d of %d admitted, want exactly %d", round, n, takers, limit)
		}
		if n := g.inFlight.Load(); n != limit {
			t.Fatalf("round %d: in flight %d after the burst, want %d", round, n, limit)
		}
		for range limit {
			g.done()
		}
		if n := g.inFlight.Load(); n != 0 {
			t.Fatalf("round %d: in flight %d after every slot returned", round, n)
		}
	}
	off := &gate{max: 0}
	for range 1000 {
		if !off.try() {
			t.Fatal("a gate with no limit refused")
		}
	}
}

// overloadHarness is a server whose decider blocks every decision until
// released, with the in-flight limit at limit.
func overloadHarness(t *testing.T, limit int) (*harness, *fakeDecider) {
	t.Helper()
	d := &fakeDecider{revision: "rev", hold: make(chan struct{}), entered: make(chan struct{}, 64)}
	b := aiGateway()
	b.Decider = d
	return newHarness(t, Options{Overload: OverloadOptions{MaxInFlight: limit}}, b), d
}

// fillGate starts n checks that block inside the decider and returns once
// all of them hold a slot; wait returns their answers' reasons.
func fillGate(t *testing.T, h *harness, d *fakeDecider, n int) (wait func() []string) {
	t.Helper()
	reasons := make(chan string, n)
	for range n {
		go func() {
			resp, _ := h.srv.Check(context.Background(), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com"))
			reasons <- meta(resp)["reason"]
		}()
	}
	for range n {
		select {
		case <-d.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("held checks did not reach the decider")
		}
	}
	return func() []string {
		var out []string
		for range n {
			select {
			case r := <-reasons:
				out = append(out, r)
			case <-time.After(10 * time.Second):
				t.Fatal("held checks did not finish")
			}
		}
		return out
	}
}

// TestCheckShedsAtInFlightLimit: with the limit taken by slow checks, a
// concurrent burst is answered at once with 503 overloaded (UNAVAILABLE),
// never reaches the verifier or the policy, is counted, and is logged in
// one summary line instead of a line a check. Once the slow checks finish
// the server admits again.
func TestCheckShedsAtInFlightLimit(t *testing.T) {
	const limit, burst = 4, 50
	h, d := overloadHarness(t, limit)
	wait := fillGate(t, h, d, limit)
	verified := len(h.ver.calls)

	var wg sync.WaitGroup
	var wrong atomic.Int64
	start := time.Now()
	for range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.srv.Check(context.Background(), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com"))
			m := meta(resp)
			if err != nil || resp.GetOkResponse() != nil || resp.GetStatus().GetCode() != int32(code.Code_UNAVAILABLE) ||
				resp.GetDeniedResponse().GetStatus().GetCode() != 503 || m["reason"] != string(policy.ReasonOverloaded) ||
				!strings.Contains(resp.GetDeniedResponse().GetBody(), "overloaded") {
				wrong.Add(1)
				t.Errorf("shed check answered %v %v", resp, err)
			}
		}()
	}
	wg.Wait()
	// Generous bound for a loaded CI box; a queued check would wait for
	// the held ones, which are released only below.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shedding %d checks took %v", burst, d)
	}
	if n := len(h.ver.calls) - verified; n != 0 {
		t.Errorf("%d shed checks reached the verifier", n)
	}
	if n := counterValue(t, h.srv.overload.shed[shedOverloaded]); n != burst {
		t.Errorf("ccauthz_checks_shed_total{reason=overloaded} = %v, want %d", n, burst)
	}
	if n := counterValue(t, h.srv.unknownCounters.checks[counterKey{modeGRPC, decisionDeny, policy.ReasonOverloaded}]); n != 0 {
		t.Errorf("shed checks counted under the unknown backend: %v", n)
	}
	shedLines := 0
	for _, l := range h.logs.lines(t) {
		if l["msg"] == "shedding checks" {
			shedLines++
		}
		if l["msg"] != "shedding checks" && l["reason"] == string(policy.ReasonOverloaded) {
			t.Errorf("a shed check got its own decision log line: %v", l)
		}
	}
	if shedLines != 1 {
		t.Errorf("%d \"shedding checks\" lines for one burst, want 1", shedLines)
	}

	close(d.hold)
	for _, r := range wait() {
		if r != string(policy.ReasonAllowed) {
			t.Errorf("a held check ended %q, want allowed", r)
		}
	}
	if n := h.srv.overload.gate.inFlight.Load(); n != 0 {
		t.Errorf("in flight %d after every check finished", n)
	}
	d.entered = make(chan struct{}, 1)
	resp, _ := h.srv.Check(context.Background(), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com"))
	if resp.GetOkResponse() == nil {
		t.Errorf("after the overload: %v", resp)
	}
}

// TestHTTPChecksShareTheLimit: the HTTP check modes count against the same
// in-flight limit and shed with the same 503.
func TestHTTPChecksShareTheLimit(t *testing.T) {
	h, d := overloadHarness(t, 2)
	wait := fillGate(t, h, d, 2)
	nginx := map[string]string{"X-Original-Method": "POST", "X-Original-Uri": "/allowed", "Authorization": "Bearer good-i"}
	// nginx's auth_request takes only 401/403: the status travels in a header.
	if w := do(h.srv.HTTPHandler(), "GET", "/v1/auth/nginx", nginx, ""); w.Code != 403 || w.Header().Get(httpcheck.HeaderStatus) != "503" {
		t.Errorf("nginx check at the limit: %d %v %s", w.Code, w.Header(), w.Body)
	}
	fwd := map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/allowed", "Authorization": "Bearer good-i"}
	if w := do(h.srv.HTTPHandler(), "GET", "/v1/auth/forward", fwd, ""); w.Code != 503 {
		t.Errorf("forward-auth check at the limit: %d %s", w.Code, w.Body)
	}
	w := do(h.srv.HTTPHandler(), "POST", "/v1/check", nil,
		`{"backend":"ai_gateway","method":"POST","path":"/allowed","headers":{"authorization":"Bearer good-i"}}`)
	if body := jsonBody(t, w); w.Code != 200 || body["reason"] != string(policy.ReasonOverloaded) || body["status"] != 503.0 {
		t.Errorf("JSON check at the limit: %d %v", w.Code, body)
	}
	close(d.hold)
	wait()
	if n := counterValue(t, h.srv.overload.shed[shedOverloaded]); n != 3 {
		t.Errorf("shed counter %v, want 3", n)
	}
}

// TestCallerDeadlineDropsBeforeEvaluation: a check whose caller deadline has
// passed, or is closer than min_deadline, is answered 503
// deadline_exceeded without verification or evaluation.
func TestCallerDeadlineDropsBeforeEvaluation(t *testing.T) {
	h := newHarness(t, Options{Overload: OverloadOptions{MinDeadline: 50 * time.Millisecond}}, aiGateway())
	passed, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	for name, ctx := range map[string]context.Context{"passed": passed, "too short": short} {
		resp, err := h.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com"))
		if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 503 || meta(resp)["reason"] != string(policy.ReasonDeadlineExceeded) {
			t.Errorf("%s: %v %v", name, resp, err)
		}
	}
	if n := len(h.ver.calls); n != 0 {
		t.Errorf("dropped checks reached the verifier %d times", n)
	}
	if n := counterValue(t, h.srv.overload.shed[shedDeadline]); n != 2 {
		t.Errorf("ccauthz_checks_shed_total{reason=deadline} = %v, want 2", n)
	}
	ok, cancel3 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel3()
	if resp, _ := h.srv.Check(ok, request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com")); resp.GetOkResponse() == nil {
		t.Errorf("a check with time to spare: %v", resp)
	}
}

// TestPanicReturnsTheSlot: a decision that panics still gives its slot back.
func TestPanicReturnsTheSlot(t *testing.T) {
	h := newHarness(t, Options{Overload: OverloadOptions{MaxInFlight: 1}}, aiGateway())
	h.deciders["ai_gateway"].panics = true
	for range 3 {
		resp, _ := h.srv.Check(context.Background(), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com"))
		if r := meta(resp)["reason"]; r != string(policy.ReasonInternalError) {
			t.Fatalf("panicking decision answered %q, want internal_error (not overloaded)", r)
		}
	}
	if n := h.srv.overload.gate.inFlight.Load(); n != 0 {
		t.Errorf("in flight %d after panics", n)
	}
}

func TestOverloadDefaults(t *testing.T) {
	var o OverloadOptions
	o.defaults()
	if o.MaxInFlight < DefaultInFlightPerCPU || o.MinDeadline != DefaultMinDeadline || o.MaxQueueWait != 0 || o.RefuseStreams {
		t.Errorf("defaults %+v", o)
	}
	off := OverloadOptions{MaxInFlight: -1}
	off.defaults()
	h := newHarness(t, Options{Overload: off}, aiGateway())
	if h.srv.overload.gate.max > 0 {
		t.Errorf("-1 must turn the limit off, got %d", h.srv.overload.gate.max)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestOverloadOverGRPC sheds over a real gRPC connection on loopback: a
// burst at the limit is answered UNAVAILABLE overloaded, a grpc-timeout
// shorter than min_deadline is dropped as deadline_exceeded, the held
// checks still complete, and the server leaves no goroutine behind.
func TestOverloadOverGRPC(t *testing.T) {
	assertNoLeak := goroutineBaseline(t)
	d := &fakeDecider{revision: "rev", hold: make(chan struct{}), entered: make(chan struct{}, 64)}
	b := aiGateway()
	b.Decider = d
	h := newHarness(t, Options{DrainTimeout: 2 * time.Second, Overload: OverloadOptions{MaxInFlight: 3, MinDeadline: 200 * time.Millisecond}}, b)
	var ls Listeners
	for _, p := range []*net.Listener{&ls.GRPC, &ls.Admin} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*p = l
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ctx, ls) }()
	conn, err := grpc.NewClient(ls.GRPC.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := authv3.NewAuthorizationClient(conn)
	check := func(ctx context.Context) (string, error) {
		resp, err := client.Check(ctx, request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com"))
		if err != nil {
			return "", err
		}
		if resp.GetOkResponse() == nil && resp.GetStatus().GetCode() != int32(code.Code_UNAVAILABLE) && meta(resp)["reason"] != string(policy.ReasonAllowed) {
			t.Errorf("unexpected answer %v", resp)
		}
		return meta(resp)["reason"], nil
	}

	held := make(chan string, 3)
	for range 3 {
		go func() {
			r, err := check(context.Background())
			if err != nil {
				t.Error(err)
			}
			held <- r
		}()
	}
	for range 3 {
		select {
		case <-d.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("held checks did not reach the decider")
		}
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := check(context.Background()); err != nil || r != string(policy.ReasonOverloaded) {
				t.Errorf("burst at the limit: %q %v", r, err)
			}
		}()
	}
	wg.Wait()
	short, stop := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if r, err := check(short); err != nil || r != string(policy.ReasonDeadlineExceeded) {
		t.Errorf("grpc-timeout under min_deadline: %q %v", r, err)
	}
	stop()
	close(d.hold)
	for range 3 {
		if r := <-held; r != string(policy.ReasonAllowed) {
			t.Errorf("held check: %q", r)
		}
	}
	conn.Close()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	assertNoLeak()
}

// TestShedIsNotRelaxedByDryRun: overloaded is a fault, so even a dry-run
// server denies it (a shed check was never evaluated: nothing to report).
func TestShedIsNotRelaxedByDryRun(t *testing.T) {
	d := &fakeDecider{revision: "rev", hold: make(chan struct{}), entered: make(chan struct{}, 4)}
	b := aiGateway()
	b.Decider = d
	h := newHarness(t, Options{DryRun: true, Overload: OverloadOptions{MaxInFlight: 1}}, b)
	wait := fillGate(t, h, d, 1)
	resp, _ := h.srv.Check(context.Background(), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com"))
	if resp.GetOkResponse() != nil || meta(resp)["reason"] != string(policy.ReasonOverloaded) || meta(resp)["dry_run"] == "true" {
		t.Errorf("shed in dry-run: %v", resp)
	}
	close(d.hold)
	wait()
}

// queuedFor is a Check context as tapStream makes it, for a stream whose
// HEADERS frame was read wait ago.
func queuedFor(wait time.Duration) context.Context {
	return &arrivalCtx{Context: context.Background(), arrival: arrival{at: time.Now().Add(-wait)}}
}

// TestQueueWaitSheds: a check that waited in the transport longer than
// max_queue_wait is answered 503 overloaded without verification, counted
// as queued, and marks the server congested: with refuse_streams the tap
// then refuses new Check streams (RESOURCE_EXHAUSTED) but never other
// methods, and admits again once the congestion has passed. A check that
// waited less is decided as usual.
func TestQueueWaitSheds(t *testing.T) {
	h := newHarness(t, Options{Overload: OverloadOptions{MaxQueueWait: time.Minute, RefuseStreams: true}}, aiGateway())
	ov := h.srv.overload
	if resp, _ := h.srv.Check(queuedFor(time.Second), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com")); resp.GetOkResponse() == nil {
		t.Fatalf("a check that waited under max_queue_wait: %v", resp)
	}
	ov.maxQueueWait = 100 * time.Millisecond
	before := time.Now()
	resp, err := h.srv.Check(queuedFor(time.Second), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com"))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 503 || meta(resp)["reason"] != string(policy.ReasonOverloaded) {
		t.Fatalf("a check that waited 1s: %v %v", resp, err)
	}
	if n := len(h.ver.calls); n != 1 {
		t.Errorf("verifier called %d times, want 1 (the shed check must not reach it)", n)
	}
	if n := counterValue(t, ov.shed[shedQueued]); n != 1 {
		t.Errorf("ccauthz_checks_shed_total{reason=queued} = %v, want 1", n)
	}
	big := request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com")
	big.Attributes.Request.Http.Headers["x-big"] = strings.Repeat("x", largeCheckBytes)
	if resp, _ := h.srv.Check(queuedFor(time.Second), big); resp.GetOkResponse() == nil {
		t.Errorf("a check over %d bytes that waited 1s (its upload) was not decided: %v", largeCheckBytes, resp)
	}
	until := time.Unix(0, ov.congestedUntil.Load())
	if until.Before(before.Add(ov.maxQueueWait)) || until.After(time.Now().Add(ov.maxQueueWait)) {
		t.Errorf("congested until %v, want max_queue_wait after the shed", until)
	}

	if _, err := h.srv.tapStream(context.Background(), &tap.Info{FullMethodName: checkMethod}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("tap while congested: %v, want RESOURCE_EXHAUSTED", err)
	}
	if n := counterValue(t, ov.shed[shedRefused]); n != 1 {
		t.Errorf("ccauthz_checks_shed_total{reason=refused} = %v, want 1", n)
	}
	if ctx, err := h.srv.tapStream(context.Background(), &tap.Info{FullMethodName: "/grpc.health.v1.Health/Check"}); err != nil || ctx.Value(arrivalKey{}) != nil {
		t.Errorf("tap refused or stamped a health check: %v", err)
	}

	ov.congestedUntil.Store(time.Now().Add(-time.Millisecond).UnixNano())
	ctx, err := h.srv.tapStream(context.Background(), &tap.Info{FullMethodName: checkMethod})
	if err != nil {
		t.Fatalf("tap after the congestion: %v", err)
	}
	if a, ok := ctx.Value(arrivalKey{}).(*arrival); !ok || time.Since(a.at) > time.Minute || a.at.After(time.Now()) {
		t.Fatalf("tap did not stamp the arrival: %v", ctx.Value(arrivalKey{}))
	}
	if resp, _ := h.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com")); resp.GetOkResponse() == nil {
		t.Errorf("a fresh check after the congestion: %v", resp)
	}

	// Without refuse_streams congestion only sheds in the handler.
	ov.refuse = false
	ov.congestedUntil.Store(time.Now().Add(time.Hour).UnixNano())
	if _, err := h.srv.tapStream(context.Background(), &tap.Info{FullMethodName: checkMethod}); err != nil {
		t.Errorf("tap refused with refuse_streams off: %v", err)
	}
}

// TestTapRefusesAtFullGate: with refuse_streams, a Check stream arriving
// while the in-flight gate is full is refused before decoding.
func TestTapRefusesAtFullGate(t *testing.T) {
	d := &fakeDecider{revision: "rev", hold: make(chan struct{}), entered: make(chan struct{}, 4)}
	b := aiGateway()
	b.Decider = d
	h := newHarness(t, Options{Overload: OverloadOptions{MaxInFlight: 2, RefuseStreams: true}}, b)
	wait := fillGate(t, h, d, 2)
	if _, err := h.srv.tapStream(context.Background(), &tap.Info{FullMethodName: checkMethod}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("tap at a full gate: %v", err)
	}
	close(d.hold)
	wait()
	if _, err := h.srv.tapStream(context.Background(), &tap.Info{FullMethodName: checkMethod}); err != nil {
		t.Errorf("tap after the gate emptied: %v", err)
	}
}

// TestQueueWaitOverGRPC: over a real gRPC connection the tap's arrival
// stamp reaches the handler (a max_queue_wait of 1ns sheds every check as
// queued), and with refuse_streams a congested server answers the next
// stream RESOURCE_EXHAUSTED; with the shedding off checks are allowed.
func TestQueueWaitOverGRPC(t *testing.T) {
	assertNoLeak := goroutineBaseline(t)
	h := newHarness(t, Options{DrainTimeout: 2 * time.Second, Overload: OverloadOptions{MaxQueueWait: time.Nanosecond, RefuseStreams: true}}, aiGateway())
	var ls Listeners
	for _, p := range []*net.Listener{&ls.GRPC, &ls.Admin} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*p = l
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ctx, ls) }()
	conn, err := grpc.NewClient(ls.GRPC.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := authv3.NewAuthorizationClient(conn)
	ov := h.srv.overload
	resp, err := client.Check(context.Background(), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com"))
	if err != nil || meta(resp)["reason"] != string(policy.ReasonOverloaded) {
		t.Errorf("check with max_queue_wait 1ns: %v %v", resp, err)
	}
	if n := counterValue(t, ov.shed[shedQueued]); n != 1 {
		t.Errorf("queued shed counter %v, want 1", n)
	}
	ov.congestedUntil.Store(time.Now().Add(time.Hour).UnixNano())
	if _, err := client.Check(context.Background(), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com")); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("check while congested: %v, want RESOURCE_EXHAUSTED", err)
	}
	ov.maxQueueWait, ov.refuse = time.Hour, false
	if resp, err := client.Check(context.Background(), request("/allowed", "Bearer good-i", nil, "cloud.gitlab.com")); err != nil || resp.GetOkResponse() == nil {
		t.Errorf("check with shedding relaxed: %v %v", resp, err)
	}
	conn.Close()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	assertNoLeak()
}
