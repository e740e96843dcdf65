package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nginxBinary returns the nginx binary, or skips the test: CI installs nginx
// (.ci/run), a developer machine may not have it.
func nginxBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nginx")
	if err != nil {
		for _, c := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, err := os.Stat(c); err == nil {
				return c
			}
		}
		t.Skip("nginx is not installed (apt-get install nginx; .ci/run does it in CI)")
	}
	return p
}

// nginxPrefix copies the shipped nginx files into a fresh prefix directory,
// applying the address replacements, and returns the path of example.conf.
func nginxPrefix(t *testing.T, replace map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"example.conf", "ccauthz-auth.conf"} {
		b, err := os.ReadFile(filepath.Join("nginx", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for from, to := range replace {
			if name == "example.conf" {
				if !strings.Contains(s, from) {
					t.Fatalf("nginx/%s: %q not found; the test's address replacement is stale", name, from)
				}
				s = strings.ReplaceAll(s, from, to)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "example.conf")
}

func TestNginxConfigSyntax(t *testing.T) {
	bin := nginxBinary(t)
	conf := nginxPrefix(t, nil)
	out, err := exec.Command(bin, "-t", "-e", "stderr", "-p", filepath.Dir(conf)+"/", "-c", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t did not succeed:\n%s", out)
	}
}
