package token

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// IssuerConfig is one trusted token issuer (the `issuers` list of the server
// configuration; see docs/architecture.md).
type IssuerConfig struct {
	// Name identifies the issuer in results, logs and metrics (snake_case,
	// unique).
	Name string `yaml:"name"`
	// Issuer is the exact `iss` value of its tokens (no normalisation: a
	// trailing slash matters).
	Issuer string `yaml:"issuer"`
	// DiscoveryURL is an OIDC discovery document; its jwks_uri is fetched.
	DiscoveryURL string `yaml:"discovery_url"`
	// JWKSURL is a JWKS document fetched directly.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSFile is a local JWKS file (air-gapped), watched and reloaded.
	JWKSFile string `yaml:"jwks_file"`
	// Algorithms are the accepted signature algorithms (default [RS256]);
	// none and HMAC are never accepted.
	Algorithms []string `yaml:"algorithms"`
	// Kind is instance (sub is the instance id) or user (sub is the global
	// user id). Default instance.
	Kind Kind `yaml:"kind"`
	// Realm, when set, is the only gitlab_realm claim accepted.
	Realm string `yaml:"realm"`
	// Keys tunes the key cache.
	Keys KeysConfig `yaml:"keys"`
}

// KeysConfig is the key-cache policy of an issuer. Zero fields take the
// defaults of DefaultKeys.
type KeysConfig struct {
	// RefreshFloor and RefreshCeiling clamp the JWKS Cache-Control max-age.
	RefreshFloor   time.Duration `yaml:"refresh_floor"`
	RefreshCeiling time.Duration `yaml:"refresh_ceiling"`
	// StaleMaxAge is how long past its refresh time the last good key set
	// is still served while the issuer is down.
	StaleMaxAge time.Duration `yaml:"stale_max_age"`
	// UnknownKIDInterval is the minimum time between two refetches caused
	// by an unknown kid.
	UnknownKIDInterval time.Duration `yaml:"unknown_kid_interval"`
	// FetchTimeout bounds each HTTP request to the issuer.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
}

// DefaultKeys returns the key-cache policy used for unset fields.
func DefaultKeys() KeysConfig {
	return KeysConfig{
		RefreshFloor:       5 * time.Minute,
		RefreshCeiling:     24 * time.Hour,
		StaleMaxAge:        72 * time.Hour,
		UnknownKIDInterval: 30 * time.Second,
		FetchTimeout:       10 * time.Second,
	}
}

// supportedAlgorithms are the asymmetric JWS algorithms the verifier
// implements.
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// WithDefaults returns c with unset optional fields filled in.
func (c IssuerConfig) WithDefaults() IssuerConfig {
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{"RS256"}
	}
	if c.Kind == "" {
		c.Kind = KindInstance
	}
	d := DefaultKeys()
	k := &c.Keys
	for _, p := range []struct{ v, def *time.Duration }{
		{&k.RefreshFloor, &d.RefreshFloor}, {&k.RefreshCeiling, &d.RefreshCeiling},
		{&k.StaleMaxAge, &d.StaleMaxAge}, {&k.UnknownKIDInterval, &d.UnknownKIDInterval},
		{&k.FetchTimeout, &d.FetchTimeout},
	} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	return c
}

// problemFunc reports a problem with field of an issuer ("" for the issuer
// as a whole).
type problemFunc func(field, format string, args ...any)

// check reports every problem of one issuer (defaults already applied).
func (c IssuerConfig) check(report problemFunc) {
	if c.Name == "" {
		report("name", "missing required field %q", "name")
	} else if !nameRe.MatchString(c.Name) {
		report("name", "issuer name %q must be snake_case (a-z, 0-9, _; starting with a letter)", c.Name)
	}
	if c.Issuer == "" {
		report("issuer", "missing required field %q (the exact iss value of the tokens)", "issuer")
	} else if strings.TrimSpace(c.Issuer) != c.Issuer {
		report("issuer", "issuer %q has leading or trailing spaces", c.Issuer)
	}
	sources := 0
	for _, s := range []struct{ field, v string }{
		{"discovery_url", c.DiscoveryURL}, {"jwks_url", c.JWKSURL}, {"jwks_file", c.JWKSFile},
	} {
		if s.v == "" {
			continue
		}
		sources++
		if s.field == "jwks_file" {
			continue
		}
		u, err := url.Parse(s.v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			report(s.field, "%s %q must be an http(s) URL", s.field, s.v)
		}
	}
	if sources != 1 {
		report("", "issuer %q needs exactly one key source (discovery_url, jwks_url or jwks_file), got %d", c.Name, sources)
	}
	seen := map[string]bool{}
	for _, a := range c.Algorithms {
		switch {
		case strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS"):
			report("algorithms", "algorithm %q is never accepted (unsigned or symmetric; a public key must not be an HMAC secret)", a)
		case !slices.Contains(supportedAlgorithms, a):
			report("algorithms", "unknown algorithm %q (known: %s)", a, strings.Join(supportedAlgorithms, ", "))
		case seen[a]:
			report("algorithms", "algorithm %q listed twice", a)
		}
		seen[a] = true
	}
	if c.Kind != KindInstance && c.Kind != KindUser {
		report("kind", "kind %q must be %q or %q", c.Kind, KindInstance, KindUser)
	}
	k := c.Keys
	if k.RefreshFloor < time.Second {
		report("keys.refresh_floor", "refresh_floor %s must be at least 1s", k.RefreshFloor)
	}
	if k.RefreshCeiling < k.RefreshFloor {
		report("keys.refresh_ceiling", "refresh_ceiling %s must not be below refresh_floor %s", k.RefreshCeiling, k.RefreshFloor)
	}
	if k.StaleMaxAge < 0 {
		report("keys.stale_max_age", "stale_max_age %s must not be negative", k.StaleMaxAge)
	}
	if k.UnknownKIDInterval < time.Second {
		report("keys.unknown_kid_interval", "unknown_kid_interval %s must be at least 1s (it bounds refetches caused by random kids)", k.UnknownKIDInterval)
	}
	if k.FetchTimeout <= 0 || k.FetchTimeout > time.Minute {
		report("keys.fetch_timeout", "fetch_timeout %s must be between 0s (exclusive) and 1m", k.FetchTimeout)
	}
	if k.FetchTimeout > k.RefreshFloor && k.RefreshFloor >= time.Second {
		report("keys.fetch_timeout", "fetch_timeout %s must not exceed refresh_floor %s", k.FetchTimeout, k.RefreshFloor)
	}
}

// ValidateIssuers applies defaults and returns every problem of the list
// (each issuer's rules, unique names and iss values), one per line, or nil.
func ValidateIssuers(issuers []IssuerConfig) error {
	var lines []string
	checkList(issuers, func(i int, field, format string, args ...any) {
		where := "issuers"
		if i >= 0 {
			where = fmt.Sprintf("issuers[%d]", i)
		}
		if field != "" {
			where += "." + field
		}
		lines = append(lines, where+": "+fmt.Sprintf(format, args...))
	})
	if len(lines) == 0 {
		return nil
	}
	return &ConfigError{Problems: lines}
}

// ConfigError lists every problem of an issuer list.
type ConfigError struct {
	Problems []string
}

// Error prints one problem per line.
func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

func checkList(issuers []IssuerConfig, report func(i int, field, format string, args ...any)) {
	if len(issuers) == 0 {
		report(-1, "", "no issuers configured: every token would be rejected")
	}
	names := map[string]int{}
	values := map[string]int{}
	for i, ic := range issuers {
		ic = ic.WithDefaults()
		ic.check(func(field, format string, args ...any) { report(i, field, format, args...) })
		if j, dup := names[ic.Name]; dup && ic.Name != "" {
			report(i, "name", "duplicate issuer name %q (also issuers[%d])", ic.Name, j)
		} else {
			names[ic.Name] = i
		}
		if j, dup := values[ic.Issuer]; dup && ic.Issuer != "" {
			report(i, "issuer", "duplicate issuer %q (also issuers[%d]): one iss value must map to one key set", ic.Issuer, j)
		} else {
			values[ic.Issuer] = i
		}
	}
}
