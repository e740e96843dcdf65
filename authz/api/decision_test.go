package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ccauthz/ccauthz/authz/server"
	"github.com/ccauthz/ccauthz/policy"
	ccauthzv1 "github.com/ccauthz/ccauthz/proto/ccauthz/v1"
)

func TestExplainUnavailableBeforeServer(t *testing.T) {
	svc := NewDecisionService(func() Explainer { return nil })
	if _, err := svc.Explain(context.Background(), &ccauthzv1.ExplainRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v", err)
	}
}

// TestExplainRequestRefused: a request refused before a backend is chosen
// traces the refusal and skips everything after it.
func TestExplainRequestRefused(t *testing.T) {
	var got *authv3.CheckRequest
	svc := NewDecisionService(func() Explainer {
		return func(_ context.Context, req *authv3.CheckRequest) *server.Explained {
			got = req
			return &server.Explained{RequestErr: errors.New("path has a NUL"),
				Decision: policy.Decision{Status: 400, Reason: "bad_request", Body: map[string]any{"error": "path has a NUL"}}}
		}
	})
	body := []byte("{}")
	resp, err := svc.Explain(context.Background(), &ccauthzv1.ExplainRequest{Backend: "ai_gateway", Path: "/x?y=1", Host: "h",
		Headers: map[string]string{"Authorization": "Bearer t"}, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	h := got.GetAttributes().GetRequest().GetHttp()
	if h.GetMethod() != "GET" || h.GetPath() != "/x?y=1" || h.GetHost() != "h" || string(h.GetRawBody()) != "{}" ||
		got.GetAttributes().GetContextExtensions()["backend"] != "ai_gateway" || len(h.GetHeaderMap().GetHeaders()) != 1 {
		t.Fatalf("check request: %v", got)
	}
	d := resp.GetDecision()
	if d.GetAllow() || d.GetStatus() != 400 || d.GetReason() != "bad_request" || !strings.Contains(d.GetBody(), "NUL") {
		t.Fatalf("decision: %v", d)
	}
	tr := resp.GetTrace()
	if tr[0].GetOutcome() != ccauthzv1.TraceStep_OUTCOME_FAIL || !strings.Contains(tr[0].GetDetail(), "NUL") {
		t.Fatalf("trace: %v", tr)
	}
	for _, s := range tr[1:] {
		if s.GetOutcome() != ccauthzv1.TraceStep_OUTCOME_SKIP {
			t.Fatalf("after a refusal every step is skipped: %v", tr)
		}
	}
}
