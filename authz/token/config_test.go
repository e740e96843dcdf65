package token

import (
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/catalog"
)

func decode(t *testing.T, src string) ([]IssuerConfig, error) {
	t.Helper()
	var ps catalog.Problems
	r := catalog.NodeReader{File: "config.yaml", Problems: &ps}
	root := r.Parse([]byte(src))
	if root == nil {
		return nil, ps.Err()
	}
	f := r.Fields(root, "config", []string{"issuers"}, []string{"issuers"})
	return DecodeIssuers(r, f["issuers"]), ps.Err()
}

func TestDecodeIssuers(t *testing.T) {
	got, err := decode(t, `
issuers:
  - name: gitlab_com
    issuer: https://gitlab.com
    discovery_url: https://gitlab.com/.well-known/openid-configuration
    realm: saas
    keys:
      refresh_floor: 10m
      stale_max_age: 24h
  - name: ai_gateway
    issuer: gitlab-ai-gateway
    jwks_file: aigw-jwks.json
    algorithms: [RS256, ES256]
    kind: user
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d issuers", len(got))
	}
	g := got[0]
	if g.Name != "gitlab_com" || g.Issuer != "https://gitlab.com" || g.Realm != "saas" || g.Kind != KindInstance ||
		len(g.Algorithms) != 1 || g.Algorithms[0] != "RS256" || g.Keys.RefreshFloor != 10*time.Minute ||
		g.Keys.StaleMaxAge != 24*time.Hour || g.Keys.RefreshCeiling != 24*time.Hour || g.Keys.FetchTimeout != 10*time.Second ||
		g.Keys.UnknownKIDInterval != 30*time.Second {
		t.Fatalf("gitlab_com decoded as %+v", g)
	}
	if a := got[1]; a.Kind != KindUser || a.JWKSFile != "aigw-jwks.json" || len(a.Algorithms) != 2 {
		t.Fatalf("ai_gateway decoded as %+v", a)
	}
}

func TestDecodeIssuersProblems(t *testing.T) {
	const ok = "    discovery_url: https://gitlab.com/.well-known/openid-configuration\n"
	tests := []struct {
		name, src string
		want      []string
	}{
		{"not a list", "issuers: {}\n", []string{"config.yaml:1:10: issuers must be a list of issuers"}},
		{"empty list", "issuers: []\n", []string{"config.yaml:1:10: no issuers configured: every token would be rejected"}},
		{"unknown field", "issuers:\n  - name: a\n    issuer: x\n" + ok + "    realms: saas\n",
			[]string{`config.yaml:5:5: unknown field "realms" in issuer (did you mean "realm"?)`}},
		{"missing issuer", "issuers:\n  - name: a\n" + ok,
			[]string{`config.yaml:2:5: missing required field "issuer" (the exact iss value of the tokens)`}},
		{"two key sources", "issuers:\n  - name: a\n    issuer: x\n" + ok + "    jwks_file: k.json\n",
			[]string{`config.yaml:2:5: issuer "a" needs exactly one key source (discovery_url, jwks_url or jwks_file), got 2`}},
		{"no key source", "issuers:\n  - name: a\n    issuer: x\n",
			[]string{`config.yaml:2:5: issuer "a" needs exactly one key source (discovery_url, jwks_url or jwks_file), got 0`}},
		{"bad url", "issuers:\n  - name: a\n    issuer: x\n    jwks_url: ftp://x/keys\n",
			[]string{`config.yaml:4:15: jwks_url "ftp://x/keys" must be an http(s) URL`}},
		{"alg none and HS256", "issuers:\n  - name: a\n    issuer: x\n" + ok + "    algorithms: [none, HS256, RS257]\n",
			[]string{
				`config.yaml:5:17: algorithm "HS256" is never accepted (unsigned or symmetric; a public key must not be an HMAC secret)`,
				`config.yaml:5:17: algorithm "none" is never accepted (unsigned or symmetric; a public key must not be an HMAC secret)`,
				`config.yaml:5:17: unknown algorithm "RS257" (known: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512)`,
			}},
		{"bad kind and name", "issuers:\n  - name: GitLab\n    issuer: x\n" + ok + "    kind: robot\n",
			[]string{
				`config.yaml:2:11: issuer name "GitLab" must be snake_case (a-z, 0-9, _; starting with a letter)`,
				`config.yaml:5:11: kind "robot" must be "instance" or "user"`,
			}},
		{"floor above ceiling", "issuers:\n  - name: a\n    issuer: x\n" + ok + "    keys:\n      refresh_floor: 2h\n      refresh_ceiling: 1h\n",
			[]string{`config.yaml:7:24: refresh_ceiling 1h0m0s must not be below refresh_floor 2h0m0s`}},
		{"bad duration", "issuers:\n  - name: a\n    issuer: x\n" + ok + "    keys:\n      fetch_timeout: soon\n",
			[]string{`config.yaml:6:22: field "fetch_timeout" must be a duration such as "30s" or "24h", got "soon"`}},
		{"zero kid interval is defaulted, tiny one refused", "issuers:\n  - name: a\n    issuer: x\n" + ok + "    keys:\n      unknown_kid_interval: 10ms\n",
			[]string{`config.yaml:6:29: unknown_kid_interval 10ms must be at least 1s (it bounds refetches caused by random kids)`}},
		{"duplicates", "issuers:\n  - name: a\n    issuer: x\n" + ok + "  - name: a\n    issuer: x\n" + ok,
			[]string{
				`config.yaml:5:11: duplicate issuer name "a" (also issuers[0])`,
				`config.yaml:6:13: duplicate issuer "x" (also issuers[0]): one iss value must map to one key set`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, tt.src)
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestValidateIssuers(t *testing.T) {
	err := ValidateIssuers([]IssuerConfig{
		{Name: "a", Issuer: "x", JWKSFile: "k.json"},
		{Name: "b", Issuer: "x", JWKSFile: "k.json", Algorithms: []string{"HS256"}},
	})
	want := "issuers[1].algorithms: algorithm \"HS256\" is never accepted (unsigned or symmetric; a public key must not be an HMAC secret)\n" +
		"issuers[1].issuer: duplicate issuer \"x\" (also issuers[0]): one iss value must map to one key set"
	if err == nil || err.Error() != want {
		t.Fatalf("ValidateIssuers = %v\nwant %s", err, want)
	}
	if _, err := NewVerifier(nil, Options{}); err == nil {
		t.Fatal("NewVerifier accepted no issuers")
	}
}
