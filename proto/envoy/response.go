package envoy

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ccauthz/ccauthz/policy"
)

// Dynamic metadata keys. The layout is flat: every key is a direct child of
// the ext_authz filter's metadata namespace (envoy.filters.http.ext_authz) and
// every leaf is a string, except MetaRateLimitOverride which is the
// {requests_per_unit, unit} struct Envoy's RateLimit.limit override reads.
const (
	MetaDecisionID     = "decision_id"       // unique id of this decision, also in the decision log
	MetaPolicyRevision = "policy_revision"   // revision of the compiled policy that decided
	MetaBackend        = "backend"           // protected backend name from the config
	MetaRoute          = "route"             // manifest route id, "" when none matched
	MetaReason         = "reason"            // reason code (closed set)
	MetaStatus         = "status"            // HTTP status the policy chose ("200" on allow)
	MetaUnitPrimitive  = "unit_primitive"    // unit primitives of the route, comma-separated
	MetaDryRun         = "dry_run"           // "true" when the decision was computed in dry-run mode
	MetaWouldDeny      = "would_deny_reason" // dry-run only: the reason the request would have been denied
	// MetaRateLimitPrefix prefixes each rate-limit descriptor entry:
	// "ratelimit.<entry key>" → entry value.
	MetaRateLimitPrefix = "ratelimit."
	// MetaRateLimitOverride holds {requests_per_unit (number), unit (string)}
	// when the policy sets a limit override.
	MetaRateLimitOverride = "ratelimit_override"
	// MetaRateLimited is set when ccauthz's local rate limiter answered 429:
	// the descriptor that tripped ("limit=<kind>,key=value,...").
	MetaRateLimited = "ratelimited_descriptor"
)

// Responder builds CheckResponses. It holds immutable, shared sub-messages
// (reason values, the JSON content-type header) that are safe to reuse across
// concurrent responses because nothing mutates them after construction.
type Responder struct {
	reasons     map[policy.Reason]*structpb.Value
	trueValue   *structpb.Value
	falseValue  *structpb.Value
	emptyValue  *structpb.Value
	contentType *corev3.HeaderValueOption
	okStatus    *rpcstatus.Status
	statuses    map[int]*structpb.Value
	// rateLimitKeys maps each known rate-limit entry key to its metadata key
	// (MetaRateLimitPrefix + key), so responses do not concatenate them.
	rateLimitKeys map[string]string
	// overrides holds the shared metadata struct of each limit override seen
	// so far (copy on write; a policy has a handful), so responses do not
	// rebuild it. Bounded by maxOverrides; past it they are built per response.
	overrides atomic.Pointer[map[policy.LimitOverride]*structpb.Value]
	mu        sync.Mutex // serialises writers of overrides
}

// maxOverrides bounds the shared limit-override values.
const maxOverrides = 256

// NewResponder returns a Responder with its shared values prepared for the
// given reason codes (others are built per response).
func NewResponder(reasons ...policy.Reason) *Responder {
	r := &Responder{
		reasons:       make(map[policy.Reason]*structpb.Value, len(reasons)),
		trueValue:     structpb.NewStringValue("true"),
		falseValue:    structpb.NewStringValue("false"),
		emptyValue:    structpb.NewStringValue(""),
		contentType:   headerOption("content-type", "application/json"),
		okStatus:      &rpcstatus.Status{Code: int32(code.Code_OK)},
		statuses:      map[int]*structpb.Value{},
		rateLimitKeys: map[string]string{},
	}
	for _, k := range []string{"backend", "unit_primitive", "instance_id", "global_user_id", "realm", "seat_bucket", "rate_class"} {
		r.rateLimitKeys[k] = MetaRateLimitPrefix + k
	}
	for _, reason := range reasons {
		r.reasons[reason] = structpb.NewStringValue(string(reason))
	}
	for _, s := range []int{200, 400, 401, 402, 403, 404, 429, 500, 503} {
		r.statuses[s] = structpb.NewStringValue(strconv.Itoa(s))
	}
	return r
}

// BackendMeta is the per-backend part of the metadata, prepared once per
// snapshot so each response shares it.
type BackendMeta struct {
	Name     string
	Revision string
	// GRPC marks a gRPC backend (manifest protocol: grpc): its denials are
	// rendered for gRPC clients (GRPCDenial).
	GRPC     bool
	name     *structpb.Value
	revision *structpb.Value
}

// NewBackendMeta prepares the metadata values of a backend at a policy revision.
func NewBackendMeta(name, revision string) *BackendMeta {
	return &BackendMeta{
		Name: name, Revision: revision,
		name:     structpb.NewStringValue(name),
		revision: structpb.NewStringValue(revision),
	}
}

// Outcome is a finished check, ready to be put on the wire.
type Outcome struct {
	Decision   *policy.Decision
	DecisionID string
	Backend    *BackendMeta // nil when no backend was chosen
	// DryRun means the decision was computed in dry-run mode (global,
	// per-backend or per-route): a denial is reported, not enforced.
	DryRun bool
	// RateLimited is the descriptor that tripped the local rate limiter, ""
	// when none did.
	RateLimited string
	// Path is the canonical path the policy judged (after strip_prefix), ""
	// when the request was refused before a decision. The HTTP check modes
	// answer an allow with it (X-Ccauthz-Path), so a gateway can forward
	// exactly the path that was authorized.
	Path string
}

// Enforced reports whether the outcome lets the request through: the policy
// allowed it, or it was denied in dry-run mode.
func (o *Outcome) Enforced() bool { return o.Decision.Allow || o.DryRun }

// Response maps the outcome to a CheckResponse: OkHttpResponse with the
// headers to add (overwriting) and remove on allow, DeniedHttpResponse with
// status, JSON body and response headers on deny. Both carry the dynamic
// metadata. The google.rpc.Status is OK on allow, UNAUTHENTICATED for a 401,
// UNAVAILABLE for a 503, INTERNAL for a 500 and PERMISSION_DENIED otherwise.
func (r *Responder) Response(o *Outcome) *authv3.CheckResponse {
	d := o.Decision
	md := r.metadata(o)
	if o.Enforced() {
		ok := &authv3.OkHttpResponse{HeadersToRemove: validUTF8s(d.HeadersToRemove)}
		if d.Allow && len(d.Headers) > 0 {
			ok.Headers = headerOptions(d.Headers, nil)
		}
		return &authv3.CheckResponse{
			Status:          r.okStatus,
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
			DynamicMetadata: md,
		}
	}
	status := d.Status
	if status < 400 || status > 599 {
		// A deny without a usable status is a policy bug; 403 keeps it closed.
		status = 403
	}
	denied := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(status)}}
	if o.Backend != nil && o.Backend.GRPC {
		// Envoy answers a gRPC request's denial as trailers-only: grpc-status
		// from our header, grpc-message from the body (GRPCDenial).
		h, body := GRPCDenial(d, status)
		denied.Headers, denied.Body = headerOptions(h, nil), body
	} else {
		denied.Headers, denied.Body = headerOptions(d.ResponseHeaders, r.contentType), string(AppendJSON(nil, d.Body))
	}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(rpcCode(status)), Message: validUTF8(string(d.Reason))},
		HttpResponse:    &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
		DynamicMetadata: md,
	}
}

func rpcCode(status int) code.Code {
	switch status {
	case 401:
		return code.Code_UNAUTHENTICATED
	case 500:
		return code.Code_INTERNAL
	case 503:
		return code.Code_UNAVAILABLE
	default:
		return code.Code_PERMISSION_DENIED
	}
}

func (r *Responder) metadata(o *Outcome) *structpb.Struct {
	d := o.Decision
	f := make(map[string]*structpb.Value, 10+len(d.RateLimit.Entries))
	// Per-request string leaves are carved out of two batch allocations
	// instead of two allocations per leaf; each element is used in place,
	// never copied.
	n := 4 + len(d.RateLimit.Entries)
	vals := make([]structpb.Value, n)
	strs := make([]structpb.Value_StringValue, n)
	next := 0
	str := func(s string) *structpb.Value {
		v := &vals[next]
		strs[next].StringValue = validUTF8(s)
		v.Kind = &strs[next]
		next++
		return v
	}
	f[MetaDecisionID] = str(o.DecisionID)
	if b := o.Backend; b != nil {
		f[MetaBackend] = b.name
		f[MetaPolicyRevision] = b.revision
	} else {
		f[MetaBackend] = r.emptyValue
		f[MetaPolicyRevision] = r.emptyValue
	}
	f[MetaReason] = r.reasonValue(d.Reason)
	f[MetaRoute] = str(d.Route)
	status := d.Status
	if d.Allow && status == 0 {
		status = 200
	}
	if v, ok := r.statuses[status]; ok {
		f[MetaStatus] = v
	} else {
		f[MetaStatus] = str(strconv.Itoa(status))
	}
	switch len(d.UnitPrimitives) {
	case 0:
		f[MetaUnitPrimitive] = r.emptyValue
	case 1:
		f[MetaUnitPrimitive] = str(d.UnitPrimitives[0])
	default:
		f[MetaUnitPrimitive] = str(strings.Join(d.UnitPrimitives, ","))
	}
	if o.DryRun {
		f[MetaDryRun] = r.trueValue
		if !d.Allow {
			f[MetaWouldDeny] = r.reasonValue(d.Reason)
		}
	} else {
		f[MetaDryRun] = r.falseValue
	}
	for k, v := range d.RateLimit.Entries {
		mk, ok := r.rateLimitKeys[k]
		if !ok {
			mk = MetaRateLimitPrefix + validUTF8(k)
		}
		f[mk] = str(v)
	}
	if o.RateLimited != "" {
		f[MetaRateLimited] = structpb.NewStringValue(validUTF8(o.RateLimited))
	}
	if l := d.RateLimit.Limit; l != nil {
		f[MetaRateLimitOverride] = r.override(*l)
	}
	return &structpb.Struct{Fields: f}
}

// override returns the shared metadata value of a limit override. Shared
// values are never mutated after they are published.
func (r *Responder) override(l policy.LimitOverride) *structpb.Value {
	if m := r.overrides.Load(); m != nil {
		if v, ok := (*m)[l]; ok {
			return v
		}
	}
	v := structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"requests_per_unit": structpb.NewNumberValue(float64(l.RequestsPerUnit)),
		"unit":              structpb.NewStringValue(validUTF8(l.Unit)),
	}})
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.overrides.Load()
	if old != nil && len(*old) >= maxOverrides {
		return v
	}
	next := make(map[policy.LimitOverride]*structpb.Value, 1)
	if old != nil {
		if shared, ok := (*old)[l]; ok {
			return shared
		}
		for k, x := range *old {
			next[k] = x
		}
	}
	next[l] = v
	r.overrides.Store(&next)
	return v
}

func (r *Responder) reasonValue(reason policy.Reason) *structpb.Value {
	if v, ok := r.reasons[reason]; ok {
		return v
	}
	return structpb.NewStringValue(validUTF8(string(reason)))
}

// validUTF8 makes s encodable as a proto3 string: every string copied into
// a CheckResponse goes through it, so no value (a policy echoing a request
// header, a rate-limit entry) can make the response unmarshalable, which
// Envoy would see as a gRPC INTERNAL error and, with failure_mode_allow,
// let through. Invalid bytes become U+FFFD, as in the JSON bodies.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func validUTF8s(ss []string) []string {
	for i, s := range ss {
		if !utf8.ValidString(s) {
			out := slices.Clone(ss)
			for j := i; j < len(out); j++ {
				out[j] = validUTF8(out[j])
			}
			return out
		}
	}
	return ss
}

// headerOptions turns a header map into OVERWRITE_IF_EXISTS_OR_ADD options,
// sorted by name so responses are deterministic; extra (shared) is appended
// unless the map already sets the same header.
func headerOptions(h map[string]string, extra *corev3.HeaderValueOption) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(h)+1)
	if len(h) > 0 {
		// One batch allocation each for the options and their values, used
		// in place (never copied).
		opts := make([]corev3.HeaderValueOption, len(h))
		vals := make([]corev3.HeaderValue, len(h))
		i := 0
		for k, v := range h {
			vals[i].Key, vals[i].Value = validUTF8(k), validUTF8(v)
			opts[i].Header = &vals[i]
			opts[i].AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			out = append(out, &opts[i])
			i++
		}
		if len(out) > 1 {
			slices.SortFunc(out, func(a, b *corev3.HeaderValueOption) int { return strings.Compare(a.Header.Key, b.Header.Key) })
		}
	}
	if extra != nil {
		if _, set := h[extra.Header.Key]; !set {
			out = append(out, extra)
		}
	}
	return out
}

func headerOption(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
