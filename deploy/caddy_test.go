package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCaddyfile checks what the Caddyfile must say, and when caddy is
// installed, adapts it with validation the way `caddy run` would load it.
func TestCaddyfile(t *testing.T) {
	b, err := os.ReadFile("caddy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, must := range []string{"forward_auth 127.0.0.1:9192", "uri /v1/auth/forward?backend=ai_gateway",
		"header_up -X-Ccauthz-Backend", "copy_headers X-Ccauthz-Path X-Ccauthz-Decision X-Ccauthz-Decision-Id", "X-Ccauthz-Unit-Primitive", "bind 127.0.0.1",
		// Forwards the judged path, after forward_auth (inside route).
		"route {", "rewrite * {http.request.header.X-Ccauthz-Path}?{query}"} {
		if !strings.Contains(s, must) {
			t.Errorf("caddy/Caddyfile lacks %q", must)
		}
	}
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy is not installed (apt-get install caddy; .ci/run does it in CI)")
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "adapt", "--config", "caddy/Caddyfile", "--adapter", "caddyfile", "--validate")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("caddy adapt --validate: %v\n%s", err, out)
	}
	// The adapted JSON listens on loopback only and has the admin API off.
	var cfg struct {
		Admin struct {
			Disabled bool `json:"disabled"`
		} `json:"admin"`
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapted config: %v", err)
	}
	if !cfg.Admin.Disabled {
		t.Error("the admin API must be off")
	}
	for name, srv := range cfg.Apps.HTTP.Servers {
		for _, l := range srv.Listen {
			if !strings.HasPrefix(l, "127.0.0.1:") {
				t.Errorf("server %s listens on %s, want loopback", name, l)
			}
		}
	}
}
