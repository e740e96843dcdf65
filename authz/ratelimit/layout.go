package ratelimit

import (
	"slices"
	"strings"

	"github.com/ccauthz/ccauthz/policy/manifest"
)

// Kind names one kind of limit. It is the value of the first entry (key
// KindKey) of every descriptor, so one envoyproxy/ratelimit domain holds all
// kinds side by side, and it labels the rate-limited metric.
type Kind string

// Limit kinds.
const (
	// KindPerInstance limits each GitLab instance (X-Gitlab-Instance-Id)
	// outside the saas realm: all of gitlab.com shares one instance id.
	KindPerInstance Kind = "per_instance"
	// KindPerUser limits each global user id (X-Gitlab-Global-User-Id).
	KindPerUser Kind = "per_user"
	// KindAuthFailures limits the 401 answers per client. Local limiter only:
	// Envoy's rate-limit filter never sees a request ext_authz denied.
	KindAuthFailures Kind = "auth_failures"
)

// KindKey is the descriptor key of the first entry, set by a generic_key
// action to the Kind.
const KindKey = "limit"

// Descriptor entry keys: the keys of the decision's rate_limit.entries, which
// ccauthz emits as dynamic metadata "ratelimit.<key>" (proto/envoy).
const (
	EntryBackend      = "backend"
	EntryUnitPrim     = "unit_primitive"
	EntryInstanceID   = "instance_id"
	EntryGlobalUserID = "global_user_id"
	EntryRealm        = "realm"
	EntrySeatBucket   = "seat_bucket"
	EntryRateClass    = "rate_class"
)

// Entry values with a meaning of their own. The policy always emits every
// entry, with these defaults, so Envoy never drops a descriptor for a
// missing one.
const (
	// Unknown is an identity entry whose header was absent or empty; such a
	// request is not limited per instance or per user (its identity is not
	// known, and lumping every such request together would limit them all).
	Unknown = "unknown"
	// NoClass is the rate class of a request that matched no route with unit
	// primitives (public routes, denials).
	NoClass = "none"
	// RealmSaaS is exempt from per-instance limits.
	RealmSaaS = "saas"
)

// Layout returns the entry keys that follow the kind entry in a kind's
// descriptor, in order. The layout is a stable contract between the policy's
// entries, the generated Envoy actions and the generated ratelimit config:
//
//	per_instance: limit=per_instance, backend, rate_class, realm, seat_bucket, instance_id
//	per_user:     limit=per_user, backend, rate_class, seat_bucket, global_user_id
//	auth_failures (local only): limit=auth_failures, backend, client
func Layout(k Kind) []string {
	switch k {
	case KindPerInstance:
		return slices.Clone(perInstanceLayout)
	case KindPerUser:
		return slices.Clone(perUserLayout)
	}
	return nil
}

var (
	perInstanceLayout = []string{EntryBackend, EntryRateClass, EntryRealm, EntrySeatBucket, EntryInstanceID}
	perUserLayout     = []string{EntryBackend, EntryRateClass, EntrySeatBucket, EntryGlobalUserID}
)

// layout is Layout without the defensive copy, for the check path.
func layout(k Kind) []string {
	switch k {
	case KindPerInstance:
		return perInstanceLayout
	case KindPerUser:
		return perUserLayout
	}
	return nil
}

// EnvoyKinds are the kinds Envoy's rate-limit filter enforces, in the order
// of the generated route rate_limits.
var EnvoyKinds = []Kind{KindPerInstance, KindPerUser}

// Descriptor renders a kind's descriptor from decision entries as
// "limit=<kind>,key=value,...": the local limiter's bucket key, and the form
// in which a tripped descriptor is reported in metadata and logs.
func Descriptor(k Kind, entries map[string]string) string {
	keys := layout(k)
	n := len(KindKey) + 1 + len(k)
	for _, key := range keys {
		n += 2 + len(key) + len(entries[key])
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(KindKey)
	b.WriteByte('=')
	b.WriteString(string(k))
	for _, key := range keys {
		b.WriteByte(',')
		b.WriteString(key)
		b.WriteByte('=')
		b.WriteString(entries[key])
	}
	return b.String()
}

// unitSeconds is the length of a manifest limit unit.
func unitSeconds(unit string) float64 {
	switch unit {
	case "second":
		return 1
	case "minute":
		return 60
	case "hour":
		return 3600
	case "day":
		return 86400
	}
	return 0
}

// seatBucket normalises an entry value to a manifest seat bucket name.
func seatBucket(v string) string {
	for _, b := range manifest.SeatBucketNames {
		if v == b {
			return v
		}
	}
	return manifest.SeatAny
}
