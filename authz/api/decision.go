package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ccauthz/ccauthz/authz/server"
	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/policy"
	ccauthzv1 "github.com/ccauthz/ccauthz/proto/ccauthz/v1"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// Explainer decides a request without enforcing it (server.Server.Explain);
// nil before the server exists.
type Explainer func(ctx context.Context, req *authv3.CheckRequest) *server.Explained

// DecisionService implements ccauthz.v1.DecisionService.
type DecisionService struct {
	ccauthzv1.UnimplementedDecisionServiceServer
	explain func() Explainer
}

// NewDecisionService explains with the Explainer source returns (nil
// answers Unavailable).
func NewDecisionService(source func() Explainer) *DecisionService {
	return &DecisionService{explain: source}
}

// Explain implements DecisionService.Explain.
func (s *DecisionService) Explain(ctx context.Context, req *ccauthzv1.ExplainRequest) (*ccauthzv1.ExplainResponse, error) {
	ex := s.explain()
	if ex == nil {
		return nil, status.Error(codes.Unavailable, "the server is not ready yet")
	}
	e := ex(ctx, CheckRequest(req))
	return &ccauthzv1.ExplainResponse{Decision: decision(e), Trace: Trace(e)}, nil
}

// CheckRequest is the Envoy CheckRequest an ExplainRequest stands for: the
// same input Check receives, so Explain decides exactly what Check would.
func CheckRequest(req *ccauthzv1.ExplainRequest) *authv3.CheckRequest {
	headers := make([]*corev3.HeaderValue, 0, len(req.GetHeaders()))
	for _, k := range slices.Sorted(maps.Keys(req.GetHeaders())) {
		headers = append(headers, &corev3.HeaderValue{Key: k, Value: req.GetHeaders()[k]})
	}
	method := req.GetMethod()
	if method == "" {
		method = "GET"
	}
	h := &authv3.AttributeContext_HttpRequest{
		Method: method, Path: req.GetPath(), Host: req.GetHost(),
		HeaderMap: &corev3.HeaderMap{Headers: headers},
	}
	if req.Body != nil {
		h.RawBody = req.Body
		h.Size = int64(len(req.Body))
	}
	attrs := &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h}}
	if b := req.GetBackend(); b != "" {
		attrs.ContextExtensions = map[string]string{envoy.ContextExtensionBackend: b}
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func decision(e *server.Explained) *ccauthzv1.Decision {
	d := e.Decision
	out := &ccauthzv1.Decision{
		Allow: d.Allow, Status: int32(d.Status), Reason: string(d.Reason), Route: d.Route,
		UnitPrimitives: d.UnitPrimitives, ResponseHeaders: d.ResponseHeaders, Path: e.Request.Input.Path,
	}
	if d.Allow {
		out.Status = 200
		out.UpstreamHeaders = d.Headers
	}
	if e.Backend != nil {
		out.Backend = e.Backend.Name
	}
	if len(d.Body) > 0 {
		if b, err := json.Marshal(d.Body); err == nil {
			out.Body = string(b)
		}
	}
	return out
}

var (
	pass = ccauthzv1.TraceStep_OUTCOME_PASS
	fail = ccauthzv1.TraceStep_OUTCOME_FAIL
	skip = ccauthzv1.TraceStep_OUTCOME_SKIP
)

// Trace lists the checks that led to e's decision in the contract's order:
// request, backend, canonical path, token, then the policy's checks derived
// from the policy input and the decision. Token values appear only as the
// sha256 prefix and the jti.
func Trace(e *server.Explained) []*ccauthzv1.TraceStep {
	var t tracer
	if e.RequestErr != nil {
		t.add("request", fail, e.RequestErr.Error())
		t.skipRest("backend selection", "canonical path", "token", "policy")
		return t.steps
	}
	t.add("request", pass, "method "+e.Request.Input.Method+", host "+orNone(e.Request.Input.Host))
	if e.Backend == nil {
		detail := "no backend matches host " + orNone(e.Request.Input.Host)
		if e.Request.Backend != "" {
			detail = "no backend named " + e.Request.Backend
		}
		t.add("backend selection", fail, detail)
		t.skipRest("canonical path", "token", "policy")
		return t.steps
	}
	t.add("backend selection", pass, fmt.Sprintf("%s (audience %s)", e.Backend.Name, e.Backend.Audience))
	t.add("canonical path", pass, fmt.Sprintf("%q judged as %q", e.Request.RawPath, e.Request.Input.Path))
	tokenSteps(&t, e)
	policySteps(&t, e)
	return t.steps
}

type tracer struct{ steps []*ccauthzv1.TraceStep }

func (t *tracer) add(name string, o ccauthzv1.TraceStep_Outcome, detail string) {
	t.steps = append(t.steps, &ccauthzv1.TraceStep{Name: name, Outcome: o, Detail: detail})
}

func (t *tracer) skipRest(names ...string) {
	for _, n := range names {
		t.add(n, skip, "not reached")
	}
}

func tokenSteps(t *tracer, e *server.Explained) {
	r := e.Token
	if !e.Verified {
		t.add("token", skip, "not reached")
		return
	}
	id := "token " + shortHash(r.Hash)
	if r.Claims != nil && r.Claims.JTI != "" {
		id += ", jti " + r.Claims.JTI
	}
	switch {
	case r.Reason == token.ReasonMissing:
		t.add("token present", fail, "no Authorization header")
		t.skipRest("token signature", "token exp/nbf", "token audience", "token issuer", "token scopes")
		return
	case r.Reason == token.ReasonMalformedHeader:
		t.add("token present", fail, "Authorization header is not a bearer token")
		t.skipRest("token signature", "token exp/nbf", "token audience", "token issuer", "token scopes")
		return
	}
	t.add("token present", pass, id)
	if r.Status != token.StatusValid {
		// The verifier stops at the first failed check; name it and skip
		// the checks after it.
		detail := string(r.Reason)
		if r.Message != "" {
			detail += ": " + r.Message
		}
		if r.Issuer != "" {
			detail += " (issuer " + r.Issuer + ")"
		}
		t.add("token verification", fail, detail)
		t.skipRest("token scopes")
		return
	}
	c := r.Claims
	t.add("token issuer", pass, r.Issuer+" ("+string(r.Kind)+")")
	t.add("token signature", pass, "verified against the issuer's keys")
	exp := "no expiry"
	if c != nil && !c.Expiry.IsZero() {
		exp = "expires " + c.Expiry.UTC().Format(time.RFC3339)
	}
	t.add("token exp/nbf", pass, exp)
	t.add("token audience", pass, "includes "+e.Backend.Audience)
	if c != nil && len(c.Scopes) > 0 {
		t.add("token scopes", pass, strings.Join(c.Scopes, " "))
	} else {
		t.add("token scopes", fail, "the token carries no scopes")
	}
}

// policySteps derives the policy's checks from its input and decision:
// the decision's reason is the first check that failed, and every check
// before it passed.
func policySteps(t *tracer, e *server.Explained) {
	d, in := e.Decision, &e.Request.Input
	if in.Token.Status != string(token.StatusValid) {
		t.add("policy", fail, fmt.Sprintf("%s: the token is not valid, no policy check runs", d.Reason))
		return
	}
	if d.Route != "" {
		t.add("route matched", pass, d.Route)
	} else if d.Reason == policy.ReasonNoRoute {
		t.add("route matched", fail, in.Method+" "+in.Path+" matches no route of "+e.Backend.Name)
		return
	}
	var held []string
	if e.Token.Claims != nil {
		held = e.Token.Claims.Scopes
	}
	var missing []string
	for _, up := range d.UnitPrimitives {
		if !slices.Contains(held, up) {
			missing = append(missing, up)
		}
	}
	switch {
	case d.Allow:
		t.add("unit primitives", pass, "requires "+orNone(strings.Join(d.UnitPrimitives, " "))+", all held")
		if in.Body.Status != "" && in.Body.Status != policy.BodyAbsent {
			t.add("body", pass, fmt.Sprintf("body %s (%d bytes)", in.Body.Status, in.Body.Size))
		}
	case len(missing) > 0:
		t.add("unit primitives", fail, "requires "+strings.Join(d.UnitPrimitives, " ")+"; missing "+strings.Join(missing, " "))
	default:
		t.add(string(d.Reason), fail, denialDetail(d, in))
	}
	if e.DryRun && !d.Allow {
		t.add("dry run", pass, "denial is reported, not enforced")
	}
}

func denialDetail(d policy.Decision, in *policy.Input) string {
	msg := ""
	if m, ok := d.Body["error"].(string); ok {
		msg = m
	} else if m, ok := d.Body["message"].(string); ok {
		msg = m
	}
	if strings.Contains(string(d.Reason), "body") {
		msg += fmt.Sprintf(" (body %s, %d bytes)", orNone(string(in.Body.Status)), in.Body.Size)
	}
	return strings.TrimSpace(fmt.Sprintf("status %d %s", d.Status, msg))
}

func shortHash(h string) string {
	if h == "" {
		return "(no hash)"
	}
	if len(h) > 12 {
		h = h[:12]
	}
	return "sha256:" + h
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
