package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
)

// FuzzDecode feeds arbitrary documents to the config decoder. Decoding must
// never panic or hang, and must either return a config that names at least
// one backend and one issuer, or a *catalog.ValidationError whose every line
// is positioned in the file it was given.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(base))
	for _, p := range []string{
		filepath.Join("..", "..", "deploy", "kubernetes", "ccauthz.yaml"),
	} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(base + "listeners: {grpc: \"\", http: \"127.0.0.1:x\"}\n"))
	f.Add([]byte(base + "decision_cache: {size: -1}\nrate_limit: {local: yes}\n"))
	f.Add([]byte("catalog: &a [*a]\n"))
	f.Add([]byte("\tcatalog: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Decode("c.yaml", data)
		if err != nil {
			var verr *catalog.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error is %T, not a positioned *catalog.ValidationError: %v", err, err)
			}
			for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
				if !strings.HasPrefix(line, "c.yaml:") && !strings.HasPrefix(line, "c.yaml ") {
					t.Fatalf("problem not positioned in c.yaml: %q", line)
				}
			}
			return
		}
		if len(cfg.Backends) == 0 || len(cfg.Issuers) == 0 {
			t.Fatalf("decoded a config without backends or issuers: %+v", cfg)
		}
	})
}
