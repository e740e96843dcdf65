package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

func TestExcludedBuiltins(t *testing.T) {
	got := ExcludedBuiltins()
	// The documented list (docs/policy.md); a new OPA that marks more
	// builtins non-deterministic makes this fail so the docs follow.
	want := []string{"http.send", "io.jwt.decode_verify", "io.jwt.encode_sign", "io.jwt.encode_sign_raw",
		"json.match_schema", "json.verify_schema", "net.lookup_ip_addr", "opa.runtime", "rand.intn",
		"time.now_ns", "uuid.rfc4122"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ExcludedBuiltins = %v\nwant %v", got, want)
	}
}

func TestExtraModuleNetworkBuiltinRefused(t *testing.T) {
	dir := writeExtra(t, map[string]string{"phone_home.rego": `package ccauthz.extra

deny contains "remote says no" if {
	resp := http.send({"method": "GET", "url": "http://127.0.0.1:1/"})
	resp.status_code != 200
}

deny contains "unknown host" if {
	count(net.lookup_ip_addr("example.invalid")) == 0
}

deny contains "pure helpers stay allowed" if net.cidr_contains("10.0.0.0/8", "192.0.2.1")
`})
	m, _ := manifest.Example("ai_gateway")
	_, err := Build(catalog.Example(), m, BuildOptions{ExtraDir: dir})
	if !errors.Is(err, ErrBuiltinNotAllowed) {
		t.Fatalf("want ErrBuiltinNotAllowed, got %v", err)
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"policy: " + dir + "/phone_home.rego:4:10: http.send is a network or non-deterministic builtin; list it in the backend's extra_rego_builtins to allow it: builtin not allowed in extra Rego",
		dir + "/phone_home.rego:9:8: net.lookup_ip_addr is a network or non-deterministic builtin; list it in the backend's extra_rego_builtins to allow it: builtin not allowed in extra Rego",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// Allowed by name, the module compiles (and is not called here).
	if _, err := Build(catalog.Example(), m, BuildOptions{ExtraDir: dir,
		AllowBuiltins: []string{"http.send", "net.lookup_ip_addr"}}); err != nil {
		t.Fatalf("allowed builtins refused: %v", err)
	}
	// Allowing only one still refuses the other.
	if _, err := Build(catalog.Example(), m, BuildOptions{ExtraDir: dir,
		AllowBuiltins: []string{"http.send"}}); err == nil || strings.Contains(err.Error(), "http.send") ||
		!strings.Contains(err.Error(), "net.lookup_ip_addr") {
		t.Fatalf("want only net.lookup_ip_addr refused, got %v", err)
	}
	if _, err := Build(catalog.Example(), m, BuildOptions{AllowBuiltins: []string{"count"}}); err == nil ||
		!strings.Contains(err.Error(), `"count" is not an excluded builtin`) {
		t.Fatalf("unknown allow name: %v", err)
	}
}

// TestCapabilitiesBackstop: a builtin reached without the call syntax the
// walk looks for is still refused by the compiler's capabilities.
func TestCapabilitiesBackstop(t *testing.T) {
	caps, err := capabilities(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range caps.Builtins {
		if b.Nondeterministic {
			t.Errorf("capabilities keep %s", b.Name)
		}
	}
	caps, _ = capabilities([]string{"time.now_ns"})
	found := false
	for _, b := range caps.Builtins {
		found = found || b.Name == "time.now_ns"
	}
	if !found {
		t.Error("an allowed builtin is missing from the capabilities")
	}
}
