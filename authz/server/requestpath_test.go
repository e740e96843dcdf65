package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ccauthz/ccauthz/proto/httpcheck"
)

// pathCorpus is the traversal and encoding corpus every protocol mode must
// agree on: want is the path the policy judges, "" means a 400 bad_request
// whose body names problem.
var pathCorpus = []struct {
	raw, want, problem string
}{
	{raw: "/allowed", want: "/allowed"},
	{raw: "/v2/code/../../allowed", want: "/allowed"},
	{raw: "/a/%2e%2E/allowed", want: "/allowed"},
	{raw: "/a/.%2e/./allowed", want: "/allowed"},
	{raw: "/%61llow%65d", want: "/allowed"},
	{raw: "//allowed", want: "/allowed"},
	{raw: "/v2//./allowed/../allowed", want: "/v2/allowed"},
	{raw: "/v2/./code/../generations", want: "/v2/generations"},
	{raw: "/x%2F..%2Fallowed", problem: "encoded slash"},
	{raw: "/x%5c..%5Callowed", problem: "encoded slash"},
	{raw: `/x\..\allowed`, problem: "backslash"},
	{raw: "/allowed%00", problem: "NUL"},
	{raw: "/%c0%ae%c0%ae/allowed", problem: "overlong UTF-8"},
	{raw: "/%ff/allowed", problem: "not valid UTF-8"},
	{raw: "/x/..;/allowed", problem: "dot segment with a ;parameter"},
	{raw: "/x//../allowed", problem: "after a double slash"},
	{raw: "/allowed#/../x", problem: "has a #"},
	{raw: "/allowed%zz", problem: "not followed by two hex digits"},
}

// TestCanonicalPathEveryMode runs the corpus through the gRPC Check and
// every HTTP check mode: the policy sees the canonical path (and the HTTP
// modes hand it back in X-Ccauthz-Path), ambiguous paths are a 400
// bad_request naming the problem, and the decision log keeps the raw path.
func TestCanonicalPathEveryMode(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	hd := h.srv.HTTPHandler()
	auth := "Bearer good-inst1"
	type answer struct {
		status     int
		body, path string
	}
	modes := map[string]func(raw string) answer{
		"grpc": func(raw string) answer {
			resp, err := h.srv.Check(context.Background(), request(raw, auth, map[string]string{"backend": "ai_gateway"}, ""))
			if err != nil {
				t.Fatalf("Check returned an error: %v", err)
			}
			if resp.GetOkResponse() != nil {
				return answer{status: 200}
			}
			return answer{status: int(resp.GetDeniedResponse().GetStatus().GetCode()), body: resp.GetDeniedResponse().GetBody()}
		},
		"envoy_http": func(raw string) answer {
			r := httptest.NewRequest("POST", "/ext_authz/", nil)
			r.RequestURI = "/ext_authz" + raw
			r.Header.Set("Authorization", auth)
			r.Header.Set("X-Ccauthz-Backend", "ai_gateway")
			w := httptest.NewRecorder()
			hd.ServeHTTP(w, r)
			return answer{w.Code, w.Body.String(), w.Header().Get(httpcheck.HeaderPath)}
		},
		"nginx": func(raw string) answer {
			w := do(hd, "GET", "/v1/auth/nginx?backend=ai_gateway", map[string]string{
				"Authorization": auth, "X-Original-Method": "POST", "X-Original-Uri": raw}, "")
			st := w.Code
			if s := w.Header().Get(httpcheck.HeaderStatus); s != "" {
				st = map[string]int{"400": 400, "403": 403}[s]
			}
			return answer{st, w.Header().Get(httpcheck.HeaderBody), w.Header().Get(httpcheck.HeaderPath)}
		},
		"forward": func(raw string) answer {
			w := do(hd, "GET", "/v1/auth/forward?backend=ai_gateway", map[string]string{
				"Authorization": auth, "X-Forwarded-Method": "POST", "X-Forwarded-Uri": raw}, "")
			return answer{w.Code, w.Body.String(), w.Header().Get(httpcheck.HeaderPath)}
		},
		"json": func(raw string) answer {
			body, _ := json.Marshal(map[string]any{"backend": "ai_gateway", "method": "POST", "path": raw,
				"headers": map[string]string{"authorization": auth}})
			w := do(hd, "POST", "/v1/check", nil, string(body))
			if w.Code != 200 {
				return answer{status: w.Code, body: w.Body.String()}
			}
			m := jsonBody(t, w)
			st := int(m["status"].(float64))
			b, _ := json.Marshal(m["body"])
			return answer{st, string(b), m["path"].(string)}
		},
	}
	for name, send := range modes {
		for _, tc := range pathCorpus {
			d := h.deciders["ai_gateway"]
			d.mu.Lock()
			d.inputs = nil
			d.mu.Unlock()
			a := send(tc.raw)
			d.mu.Lock()
			inputs := d.inputs
			d.mu.Unlock()
			if tc.problem != "" {
				if a.status != 400 || !strings.Contains(a.body, "the request path") || !strings.Contains(a.body, tc.problem) {
					t.Errorf("%s %q: %d %s, want 400 naming %q", name, tc.raw, a.status, a.body, tc.problem)
				}
				if len(inputs) != 0 {
					t.Errorf("%s %q: the policy was asked about a refused path", name, tc.raw)
				}
				continue
			}
			if len(inputs) != 1 || inputs[0].Path != tc.want {
				t.Errorf("%s %q: policy saw %v, want %q", name, tc.raw, inputs, tc.want)
				continue
			}
			wantStatus := 403
			if tc.want == "/allowed" {
				wantStatus = 200
			}
			if a.status != wantStatus {
				t.Errorf("%s %q: status %d, want %d", name, tc.raw, a.status, wantStatus)
			}
			if name != "grpc" && a.status == 200 && a.path != tc.want {
				t.Errorf("%s %q: X-Ccauthz-Path %q, want %q", name, tc.raw, a.path, tc.want)
			}
		}
	}
	// The decision log keeps the raw path next to the canonical one (or
	// alone, when it was refused).
	var normalised, refused int
	for _, l := range h.logs.lines(t) {
		if l["raw_path"] == "/v2/./code/../generations" && l["path"] == "/v2/generations" {
			normalised++
		}
		if l["raw_path"] == "/x%2F..%2Fallowed" && l["path"] == "" && l["reason"] == "bad_request" {
			refused++
		}
	}
	if normalised != len(modes) || refused != len(modes) {
		t.Errorf("decision log: %d normalised and %d refused lines with raw_path, want %d each", normalised, refused, len(modes))
	}
}

// TestCheckOverGRPCInvalidUTF8 is the regression test of the INTERNAL
// answer: a header value that is not UTF-8 (Envoy's header_map raw_value)
// made the CheckResponse unencodable, so the client got gRPC INTERNAL
// while the log said 401, and a fail-open Envoy let it through. Over the
// real gRPC server it is now a 400 bad_request CheckResponse.
func TestCheckOverGRPCInvalidUTF8(t *testing.T) {
	h := newHarness(t, Options{DrainTimeout: time.Second}, aiGateway())
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ctx, Listeners{GRPC: grpcLis, Admin: adminLis}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	conn, err := grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)

	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{"backend": "ai_gateway"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/allowed",
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: "authorization", RawValue: []byte("Bearer bad")},
				{Key: "x-gitlab-instance-id", RawValue: []byte("inst-\xff\xfe")},
			}},
		}},
	}}
	resp, err := client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check over gRPC: %v (want a CheckResponse)", err)
	}
	den := resp.GetDeniedResponse()
	if den.GetStatus().GetCode() != 400 || meta(resp)["reason"] != "bad_request" ||
		!strings.Contains(den.GetBody(), `header \"x-gitlab-instance-id\" is not valid UTF-8`) {
		t.Fatalf("got %v %s, want 400 bad_request naming the header", den.GetStatus(), den.GetBody())
	}

	// The same in the headers map: a proto3 string that is not UTF-8
	// (Envoy's encoder does not check) used to fail decoding with INTERNAL
	// before Check ran.
	wire, err := proto.Marshal(request("/allowed", "Bearer good-inst1", map[string]string{"backend": "ai_gateway"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	wire = bytes.Replace(wire, []byte("saas"), []byte("s\xffas"), 1)
	var raw authv3.CheckResponse
	if err := conn.Invoke(context.Background(), "/envoy.service.auth.v3.Authorization/Check", &wire, &raw, grpc.ForceCodecV2(rawCodec{})); err != nil {
		t.Fatalf("Check with a non-UTF-8 headers map: %v (want a CheckResponse)", err)
	}
	if raw.GetDeniedResponse().GetStatus().GetCode() != 400 || meta(&raw)["reason"] != "bad_request" ||
		!strings.Contains(raw.GetDeniedResponse().GetBody(), "not valid UTF-8") {
		t.Fatalf("got %v %s, want 400 bad_request", raw.GetDeniedResponse().GetStatus(), raw.GetDeniedResponse().GetBody())
	}

	// Two backends named differently: 400, not "first wins".
	req = request("/allowed", "Bearer good-inst1", map[string]string{"backend": "ai_gateway"}, "")
	req.Attributes.Request.Http.Headers["x-ccauthz-backend"] = "duo_workflow_service"
	resp, err = client.Check(context.Background(), req)
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 400 || meta(resp)["reason"] != "bad_request" {
		t.Fatalf("disagreeing backends: %v %v", resp, err)
	}

	// The decoder is bounded: a message over MaxCheckRequestBytes plus the
	// body bound never reaches Check (Envoy never sends one).
	req = request("/allowed", "Bearer good-inst1", map[string]string{"backend": "ai_gateway"}, "")
	req.Attributes.Request.Http.Headers["x-big"] = strings.Repeat("a", h.srv.maxRecvMsgSize())
	if _, err := client.Check(context.Background(), req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized CheckRequest: %v, want RESOURCE_EXHAUSTED", err)
	}
}

// rawCodec sends pre-encoded request bytes (*[]byte) and decodes answers
// with protobuf: the client side of a peer whose encoder does not check
// UTF-8.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
