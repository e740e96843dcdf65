package httpcheck

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

const contentTypeJSON = "application/json"

// WriteDirect answers gateways that pass a denial to the client as it is:
// Envoy's http_service and forward-auth (Caddy, Traefik). Allow (including
// a dry-run allow) is 200 with the decision's upstream headers, which the
// gateway copies to the upstream request (Envoy allowed_upstream_headers,
// Caddy copy_headers, Traefik authResponseHeaders); with envoyRemove the
// decision's headers_to_remove go in X-Envoy-Auth-Headers-To-Remove. Deny is
// the decision's status, JSON body and response headers.
func WriteDirect(w http.ResponseWriter, o *envoy.Outcome, envoyRemove bool) {
	h := w.Header()
	h.Set(HeaderDecisionID, o.DecisionID)
	d := o.Decision
	if o.Enforced() {
		setAllowHeaders(h, o)
		setPath(h, o)
		if envoyRemove && len(d.HeadersToRemove) > 0 {
			h.Set(HeaderEnvoyRemove, strings.Join(d.HeadersToRemove, ","))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	status := denyStatus(d)
	if o.Backend != nil && o.Backend.GRPC {
		// As on the gRPC path: Envoy turns this into a trailers-only gRPC
		// answer (grpc-status from the header, grpc-message from the body).
		headers, body := envoy.GRPCDenial(d, status)
		for k, v := range headers {
			h.Set(k, v)
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		return
	}
	for k, v := range d.ResponseHeaders {
		h.Set(k, v)
	}
	h.Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(envoy.AppendJSON(nil, d.Body))
}

// WriteNginx answers an nginx auth_request subrequest. nginx only
// understands 2xx (allow) and 401/403 (deny) from it and turns any other
// status into a 500, so every denial is 401 (when the decision is 401) or
// 403, and the real status, JSON body and headers travel in X-Ccauthz-Status,
// X-Ccauthz-Body, WWW-Authenticate and Retry-After (deploy/nginx restores
// them with an error_page). Allow is 200 with the decision's upstream
// headers.
func WriteNginx(w http.ResponseWriter, o *envoy.Outcome) {
	h := w.Header()
	h.Set(HeaderDecisionID, o.DecisionID)
	d := o.Decision
	if o.Enforced() {
		setAllowHeaders(h, o)
		setPath(h, o)
		w.WriteHeader(http.StatusOK)
		return
	}
	status := denyStatus(d)
	body := envoy.AppendJSON(nil, d.Body)
	for k, v := range d.ResponseHeaders {
		h.Set(k, v)
	}
	h.Set(HeaderStatus, strconv.Itoa(status))
	// AppendJSON escapes every control character, so the body is one line
	// and a valid header value.
	h.Set(HeaderBody, string(body))
	h.Set("Content-Type", contentTypeJSON)
	wire := http.StatusForbidden
	if status == http.StatusUnauthorized {
		wire = http.StatusUnauthorized
	}
	w.WriteHeader(wire)
	_, _ = w.Write(body)
}

// Response is the answer of POST /v1/check: the full decision and where it
// came from. HTTP status 200 whenever a decision was made, allow or deny.
type Response struct {
	// DecisionID is unique per decision and also in the decision log.
	DecisionID string `json:"decision_id"`
	// Backend is the backend that decided, "" when none was chosen.
	Backend string `json:"backend"`
	// PolicyRevision is the backend's compiled policy revision.
	PolicyRevision string `json:"policy_revision"`
	// EnforcedAllow is what the gateway must do: true when the policy
	// allowed, or denied in dry-run mode.
	EnforcedAllow bool `json:"enforced_allow"`
	// DryRun is true when the decision was computed in dry-run mode (global,
	// per backend or per route).
	DryRun bool `json:"dry_run"`
	// Path is the canonical path the policy judged (docs/request-path.md).
	Path string `json:"path"`
	policy.Decision
}

// NewResponse builds the JSON API answer of an outcome. Absent maps and
// lists are empty, never null; an allow without a status is 200.
func NewResponse(o *envoy.Outcome) *Response {
	r := &Response{DecisionID: o.DecisionID, EnforcedAllow: o.Enforced(), DryRun: o.DryRun, Path: o.Path, Decision: *o.Decision}
	if o.Backend != nil {
		r.Backend, r.PolicyRevision = o.Backend.Name, o.Backend.Revision
	}
	d := &r.Decision
	if d.Allow && d.Status == 0 {
		d.Status = http.StatusOK
	}
	if !d.Allow {
		d.Status = denyStatus(o.Decision)
	}
	if d.Body == nil {
		d.Body = map[string]any{}
	}
	if d.Headers == nil {
		d.Headers = map[string]string{}
	}
	if d.ResponseHeaders == nil {
		d.ResponseHeaders = map[string]string{}
	}
	if d.UnitPrimitives == nil {
		d.UnitPrimitives = []string{}
	}
	if d.HeadersToRemove == nil {
		d.HeadersToRemove = []string{}
	}
	if d.RateLimit.Entries == nil {
		d.RateLimit.Entries = map[string]string{}
	}
	return r
}

// WriteJSON answers POST /v1/check with 200 and the Response.
func WriteJSON(w http.ResponseWriter, o *envoy.Outcome) {
	b, err := json.Marshal(NewResponse(o))
	if err != nil {
		// A body value encoding/json cannot encode (the policy contract
		// forbids it): answer the decision without its body.
		r := NewResponse(o)
		r.Body = map[string]any{}
		b, _ = json.Marshal(r)
	}
	h := w.Header()
	h.Set(HeaderDecisionID, o.DecisionID)
	h.Set("Content-Type", contentTypeJSON)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// WriteJSONError answers a malformed JSON API request: the outcome's status
// (400 or 413) and its body ({"error": "..."}) with the decision id added.
func WriteJSONError(w http.ResponseWriter, o *envoy.Outcome) {
	body := make(map[string]any, len(o.Decision.Body)+1)
	for k, v := range o.Decision.Body {
		body[k] = v
	}
	body["decision_id"] = o.DecisionID
	h := w.Header()
	h.Set(HeaderDecisionID, o.DecisionID)
	h.Set("Content-Type", contentTypeJSON)
	w.WriteHeader(denyStatus(o.Decision))
	_, _ = w.Write(append(envoy.AppendJSON(nil, body), '\n'))
}

// WriteError answers a request that is not a check at all (unknown path,
// wrong method) with status and {"error": message}.
func WriteError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(append(envoy.AppendJSON(nil, map[string]any{"error": message}), '\n'))
}

// setAllowHeaders sets the headers to add upstream. As on the gRPC path, only
// an allow by the policy adds them; a dry-run allow adds none.
func setAllowHeaders(h http.Header, o *envoy.Outcome) {
	if !o.Decision.Allow {
		return
	}
	for k, v := range o.Decision.Headers {
		h.Set(k, v)
	}
}

// setPath sets X-Ccauthz-Path on every enforced allow, dry-run included:
// a gateway that forwards it (deploy/nginx, deploy/caddy) needs it whenever
// the request goes through. A policy header of that name is overwritten.
func setPath(h http.Header, o *envoy.Outcome) {
	if o.Path != "" {
		h.Set(HeaderPath, o.Path)
	}
}

// denyStatus is the status of a denial; one without a usable status is a
// policy bug and stays closed with 403, as on the gRPC path.
func denyStatus(d *policy.Decision) int {
	if d.Status < 400 || d.Status > 599 {
		return http.StatusForbidden
	}
	return d.Status
}
