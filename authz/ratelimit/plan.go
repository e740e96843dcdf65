package ratelimit

import (
	"errors"
	"fmt"

	"github.com/ccauthz/ccauthz/policy/manifest"
)

// Plan is the limits of one backend, compiled from its bound manifest. It is
// immutable and shared by concurrent checks.
type Plan struct {
	// Label names the backend in metrics (the config's backend name).
	Label string
	// Backend is the catalog backend name: the "backend" entry the policy
	// emits.
	Backend      string
	classes      map[string]classLimits
	classOrder   []string
	authFailures *manifest.Limit
}

type classLimits struct {
	perInstance, perUser *manifest.KindLimit
}

// NewPlan compiles the limits of a manifest bound to a catalog. label is the
// backend's metric label ("" uses the catalog backend name).
func NewPlan(label string, m *manifest.Manifest) (*Plan, error) {
	if m == nil || !m.Bound() {
		return nil, errors.New("ratelimit: the manifest must be bound to a catalog")
	}
	if label == "" {
		label = m.Backend
	}
	p := &Plan{Label: label, Backend: m.Backend, classes: map[string]classLimits{}, authFailures: m.RateLimit.AuthFailures}
	for _, c := range m.RateLimit.Classes {
		if c.PerInstance == nil && c.PerUser == nil {
			continue
		}
		for _, kl := range []*manifest.KindLimit{c.PerInstance, c.PerUser} {
			if err := checkKindLimit(kl); err != nil {
				return nil, fmt.Errorf("ratelimit: %s: rate class %s: %w", m.File, c.Name, err)
			}
		}
		p.classes[c.Name] = classLimits{perInstance: c.PerInstance, perUser: c.PerUser}
		p.classOrder = append(p.classOrder, c.Name)
	}
	return p, nil
}

// checkKindLimit guards against a manifest built in Go without validation.
func checkKindLimit(kl *manifest.KindLimit) error {
	if kl == nil {
		return nil
	}
	ls := []manifest.Limit{kl.Limit}
	for _, l := range kl.SeatBuckets {
		ls = append(ls, l)
	}
	for _, l := range ls {
		if l.RequestsPerUnit < 1 || unitSeconds(l.Unit) == 0 {
			return fmt.Errorf("invalid limit %d per %q", l.RequestsPerUnit, l.Unit)
		}
	}
	return nil
}

// kindLimit returns a class's limit of a kind, nil when it has none.
func (c classLimits) kindLimit(k Kind) *manifest.KindLimit {
	switch k {
	case KindPerInstance:
		return c.perInstance
	case KindPerUser:
		return c.perUser
	}
	return nil
}

// Resolve returns the limit that applies to a kind's descriptor built from
// entries, exactly as envoyproxy/ratelimit resolves it against the config
// GenerateConfig writes: nothing for another backend, a class without that
// kind, an unknown identity or (per instance) the saas realm; else the seat
// bucket's limit, or the kind's own for "any".
func (p *Plan) Resolve(k Kind, entries map[string]string) (manifest.Limit, bool) {
	if entries[EntryBackend] != p.Backend {
		return manifest.Limit{}, false
	}
	kl := p.classes[entries[EntryRateClass]].kindLimit(k)
	if kl == nil {
		return manifest.Limit{}, false
	}
	switch k {
	case KindPerInstance:
		if entries[EntryRealm] == RealmSaaS || entries[EntryInstanceID] == Unknown || entries[EntryInstanceID] == "" {
			return manifest.Limit{}, false
		}
	case KindPerUser:
		if entries[EntryGlobalUserID] == Unknown || entries[EntryGlobalUserID] == "" {
			return manifest.Limit{}, false
		}
	}
	return kl.For(seatBucket(entries[EntrySeatBucket])), true
}

// AuthFailures returns the limit on 401 answers per client, if any.
func (p *Plan) AuthFailures() (manifest.Limit, bool) {
	if p.authFailures == nil {
		return manifest.Limit{}, false
	}
	return *p.authFailures, true
}
