package assembly

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/devissuer"
)

// TestClockSkewFromConfig: tokens.clock_skew reaches the verifier. A token
// that expired 10 s ago is refused with the default (0 s, as the AI
// gateway) and accepted with a 30 s skew.
func TestClockSkewFromConfig(t *testing.T) {
	dev, err := devissuer.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Issued 70 s ago for 60 s: expired 10 s ago.
	tok, err := dev.Mint(instance, "self-managed", []string{"complete_code"}, []string{"gitlab-ai-gateway"}, time.Now().Add(-70*time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		skew  time.Duration
		allow bool
	}{{0, false}, {30 * time.Second, true}} {
		cfg := config.Default()
		cfg.Catalog = "embedded:example"
		cfg.Backends = []config.Backend{{Name: "ai_gateway", Manifest: "embedded:ai_gateway"}}
		cfg.Issuers = append(cfg.Issuers, dev.IssuerConfig())
		cfg.Tokens.ClockSkew = tc.skew
		ctx, cancel := context.WithCancel(context.Background())
		a, err := New(ctx, &cfg, Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := a.Verifier.WaitReady(wctx); err != nil {
			t.Fatal(err)
		}
		wcancel()
		resp, _ := a.Server.Check(ctx, checkRequest("/v2/code/completions", "Bearer "+tok))
		if got := resp.GetOkResponse() != nil; got != tc.allow {
			t.Errorf("clock_skew %s: allowed %v, want %v (%v)", tc.skew, got, tc.allow, resp.GetDeniedResponse())
		}
		a.Close()
		cancel()
	}
}
