package manifest

import (
	"strings"

	"github.com/ccauthz/ccauthz/catalog"
)

// Manifest is a parsed, validated service manifest. It is immutable once
// returned by Parse, Load or Bind.
type Manifest struct {
	// File is the name the manifest was read from (for messages).
	File string `json:"-"`
	// Backend is the protected backend as written: a catalog name or jwt_aud.
	// After Bind it is the catalog name.
	Backend string `json:"backend"`
	// Audience is the backend's jwt_aud; set by Bind.
	Audience string `json:"audience,omitempty"`
	// Protocol is how the backend's clients talk: ProtocolHTTP (default)
	// or ProtocolGRPC, whose denials are answered as gRPC statuses
	// (docs/grpc-backends.md).
	// It changes how a denial is rendered, not the decision, so it is not
	// part of the manifest JSON the generated Rego is stamped with.
	Protocol string `json:"-"`
	// Bindings are the claim↔header equality checks, in evaluation order.
	Bindings    []Binding   `json:"bindings"`
	SeatBuckets SeatBuckets `json:"seat_buckets"`
	RateLimit   RateLimit   `json:"rate_limit"`
	// Flags are named switches routes refer to (refuse_headers ... flag), e.g.
	// the AI gateway's duo_classic_chat_duo_core_cutoff.
	Flags  map[string]bool `json:"flags,omitempty"`
	Routes []Route         `json:"routes"`
	// PromptRegistry is the prompt-definitions directory as written in the
	// manifest (relative to the manifest); Prompts is what was read from it,
	// sorted by id.
	PromptRegistry string   `json:"prompt_registry,omitempty"`
	Prompts        []Prompt `json:"prompts,omitempty"`

	BackendPos catalog.Position `json:"-"`
	// bound is true once the manifest was checked against a catalog.
	bound bool
}

// Backend protocols (the manifest's protocol key).
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
)

// Bound reports whether the manifest was checked against a catalog (Bind or
// Parse with a catalog), so its unit primitive names are canonical.
func (m *Manifest) Bound() bool { return m.bound }

// Binding says that a non-empty claim must equal a request header. TokenKind
// restricts the binding to one token kind ("instance" or "user"); "" applies
// to every token.
type Binding struct {
	Claim     string           `json:"claim"`
	Header    string           `json:"header"` // canonical form, e.g. X-Gitlab-Realm
	TokenKind string           `json:"token_kind,omitempty"`
	Pos       catalog.Position `json:"-"`
}

// HeaderKey is the binding's header name in lower case, as the policy input
// carries it.
func (b Binding) HeaderKey() string { return strings.ToLower(b.Header) }

// SeatBuckets are the thresholds that turn X-Gitlab-Duo-Seat-Count into a
// rate-limit bucket: 1..SmallMax is "small", up to MediumMax "medium", above
// it "large"; a missing, non-numeric or zero count is "any".
type SeatBuckets struct {
	SmallMax  int `json:"small_max"`
	MediumMax int `json:"medium_max"`
}

// Default seat-bucket thresholds.
const (
	DefaultSmallMax  = 100
	DefaultMediumMax = 1000
)

// RateLimit maps unit primitives to rate classes; a class may carry an
// Envoy limit override and per-instance and per-user limits.
type RateLimit struct {
	// DefaultClass is the class of a unit primitive no class lists. It may
	// itself be listed as a class (with no unit primitives) to give it limits.
	DefaultClass string      `json:"default_class"`
	Classes      []RateClass `json:"classes"`
	// AuthFailures limits the 401 answers one client (instance id header,
	// else source address) may get; past it the 401s become 429s. Enforced
	// only by ccauthz's local limiter: Envoy's rate-limit filter never sees
	// a request ext_authz denied.
	AuthFailures *Limit `json:"auth_failures,omitempty"`
}

// DefaultRateClass is the class name used when the manifest names none.
const DefaultRateClass = "default"

// RateClass is one rate-limit class.
type RateClass struct {
	Name           string   `json:"name"`
	UnitPrimitives []string `json:"unit_primitives"`
	// Limit is emitted as the decision's rate_limit.limit (metadata
	// ratelimit_override) for hand-written Envoy actions; the generated
	// configuration does not use it.
	Limit *Limit `json:"limit,omitempty"`
	// PerInstance limits each GitLab instance (X-Gitlab-Instance-Id) of a
	// realm other than saas; PerUser each global user id.
	PerInstance *KindLimit       `json:"per_instance,omitempty"`
	PerUser     *KindLimit       `json:"per_user,omitempty"`
	Pos         catalog.Position `json:"-"`

	upPos []catalog.Position
}

// Limit is a {requests_per_unit, unit} pair.
type Limit struct {
	RequestsPerUnit int    `json:"requests_per_unit"`
	Unit            string `json:"unit"` // second, minute, hour or day
}

// Seat buckets a KindLimit may override (the "any" bucket, a missing or
// unusable seat count, takes the KindLimit's own limit).
const (
	SeatSmall  = "small"
	SeatMedium = "medium"
	SeatLarge  = "large"
	SeatAny    = "any"
)

// SeatBucketNames are the overridable seat buckets, in size order.
var SeatBucketNames = []string{SeatSmall, SeatMedium, SeatLarge}

// KindLimit is a limit per instance or per user: Limit applies to every
// seat bucket that SeatBuckets does not override.
type KindLimit struct {
	Limit
	// SeatBuckets overrides the limit for the small, medium and large
	// buckets of X-Gitlab-Duo-Seat-Count.
	SeatBuckets map[string]Limit `json:"seat_buckets,omitempty"`
}

// For returns the limit of a seat bucket.
func (k *KindLimit) For(bucket string) Limit {
	if l, ok := k.SeatBuckets[bucket]; ok {
		return l
	}
	return k.Limit
}

// Route maps a method set and a path pattern to what a request must prove.
type Route struct {
	ID      string   `json:"id"`
	Methods []string `json:"methods"`
	// Path is the pattern: literal segments, {param} segments, and an optional
	// final "*" that matches one or more remaining segments.
	Path     string    `json:"path"`
	Segments []Segment `json:"-"`
	// Public routes need no token at all (health, metrics).
	Public bool `json:"public,omitempty"`
	// DryRun routes report a denial but the caller lets the request through.
	DryRun bool `json:"dry_run,omitempty"`
	// UnitPrimitives must all be in the token's scopes (canonical names after
	// Bind).
	UnitPrimitives []string `json:"unit_primitives,omitempty"`
	// HeaderUP is set for routes whose unit primitive is named by the
	// X-Gitlab-Unit-Primitive header (proxy routes); Allow restricts it.
	HeaderUP *HeaderUP `json:"unit_primitive_header,omitempty"`
	// Detail is the 403 body detail; it may use {unit_primitive} and the
	// route's {param} names.
	Detail string `json:"detail,omitempty"`
	// DisallowedIssuers are token issuers (the `iss` claim or the configured
	// issuer name) refused on this route.
	DisallowedIssuers []string `json:"disallowed_issuers,omitempty"`
	// AnyOf are unit primitives of which the token must hold at least one
	// (in addition to every one of UnitPrimitives).
	AnyOf []string `json:"any_of,omitempty"`
	// AuthenticateOnly routes check the token and headers but no unit
	// primitive (Duo Workflow's ListTools and friends).
	AuthenticateOnly bool `json:"authenticate_only,omitempty"`
	// NotFound routes answer 404 {"detail": Detail} to an authenticated
	// request (the AI gateway's unknown chat invokable).
	NotFound bool `json:"not_found,omitempty"`
	// Prompt routes end in "*": the rest of the path is a prompt id whose
	// unit primitives (from the prompt registry) are all required.
	Prompt bool `json:"prompt,omitempty"`
	// Body rules add unit primitives from the JSON request body.
	Body []BodyRule `json:"body,omitempty"`
	// RefuseHeaders deny requests whose header has one of some values.
	RefuseHeaders []HeaderRefusal  `json:"refuse_headers,omitempty"`
	Pos           catalog.Position `json:"-"`

	upPos, allowPos, anyPos []catalog.Position
}

// HasBody reports whether the route decides on its request body.
func (r Route) HasBody() bool { return len(r.Body) > 0 }

// HeaderRefusal denies a request whose header equals one of Values with a
// 403 {"detail": Detail}; when Flag is set only while that manifest flag is
// on.
type HeaderRefusal struct {
	Header string           `json:"header"` // canonical form
	Values []string         `json:"values"`
	Detail string           `json:"detail"`
	Flag   string           `json:"flag,omitempty"`
	Pos    catalog.Position `json:"-"`
}

// HeaderKey is the header name in lower case.
func (h HeaderRefusal) HeaderKey() string { return strings.ToLower(h.Header) }

// Prompt is one prompt of the registry: its id (the path under
// /v1/prompts/) and every unit primitive its definitions list (the union over
// model families and versions, so no version is over-allowed).
type Prompt struct {
	ID             string           `json:"id"`
	UnitPrimitives []string         `json:"unit_primitives"`
	Pos            catalog.Position `json:"-"` // first definition file

	upPos []catalog.Position
}

// HeaderUP configures a route whose unit primitive comes from the
// X-Gitlab-Unit-Primitive request header.
type HeaderUP struct {
	Allow []string `json:"allow"`
}

// DefaultDetail is the 403 detail of a route that sets none (the AI gateway's
// generic message).
const DefaultDetail = "Unauthorized to access {unit_primitive}"

// NotFoundDetail is the 404 detail of a not_found route that sets none (the
// AI gateway's unknown chat invokable).
const NotFoundDetail = "Not found"

// SegmentKind classifies one path-pattern segment.
type SegmentKind int

// Segment kinds, in increasing specificity.
const (
	SegWildcard SegmentKind = iota // final "*": one or more segments
	SegParam                       // {name}: exactly one non-empty segment
	SegLiteral                     // exact text
)

// Segment is one piece of a path pattern.
type Segment struct {
	Kind  SegmentKind
	Value string // literal text or parameter name
}

// Params returns the route's {param} names in path order.
func (r Route) Params() []string {
	var out []string
	for _, s := range r.Segments {
		if s.Kind == SegParam {
			out = append(out, s.Value)
		}
	}
	return out
}

// IsExact reports whether the pattern has only literal segments.
func (r Route) IsExact() bool {
	for _, s := range r.Segments {
		if s.Kind != SegLiteral {
			return false
		}
	}
	return true
}

// Rank orders patterns by specificity: a string that compares greater for the
// pattern that wins when both match a path. Literal segments are "2", params
// "1", a final wildcard "0" and the end of an exact-length pattern "3".
func (r Route) Rank() string {
	var b strings.Builder
	for _, s := range r.Segments {
		switch s.Kind {
		case SegLiteral:
			b.WriteByte('2')
		case SegParam:
			b.WriteByte('1')
		case SegWildcard:
			b.WriteByte('0')
			return b.String()
		}
	}
	b.WriteByte('3')
	return b.String()
}

// RateClassOf returns the class of a unit primitive.
func (m *Manifest) RateClassOf(up string) string {
	for _, c := range m.RateLimit.Classes {
		for _, u := range c.UnitPrimitives {
			if u == up {
				return c.Name
			}
		}
	}
	return m.RateLimit.DefaultClass
}

// DefaultBindings are GitLab's claim↔header checks (the AI gateway's order):
// realm, instance id, then sub bound to the instance id for instance tokens
// and to the global user id for user tokens.
func DefaultBindings() []Binding {
	return []Binding{
		{Claim: "gitlab_realm", Header: "X-Gitlab-Realm"},
		{Claim: "gitlab_instance_id", Header: "X-Gitlab-Instance-Id"},
		{Claim: "sub", Header: "X-Gitlab-Instance-Id", TokenKind: "instance"},
		{Claim: "sub", Header: "X-Gitlab-Global-User-Id", TokenKind: "user"},
	}
}
