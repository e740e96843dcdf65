package assembly

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/policy"
)

// TestInstancesShareADecision: two instances' tokens with the same scopes
// and issuer share one decision-cache entry through the whole Check, each
// answered with its own subject, realm and rate-limit identity, and
// /debug/cache says the cache keys on iss and scopes.
func TestInstancesShareADecision(t *testing.T) {
	dev, err := devissuer.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Catalog = "embedded:example"
	cfg.Backends = []config.Backend{{Name: "ai_gateway", Manifest: "embedded:ai_gateway"}}
	cfg.Issuers = append(cfg.Issuers, dev.IssuerConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, &cfg, Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := a.Verifier.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	for _, inst := range []struct{ id, realm string }{{"instance-a", "self-managed"}, {"instance-b", "saas"}} {
		tok, err := dev.Mint(inst.id, inst.realm, []string{"complete_code"}, []string{"gitlab-ai-gateway"}, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req := checkRequest("/v2/code/completions", "Bearer "+tok)
		h := req.Attributes.Request.Http.Headers
		h["x-gitlab-instance-id"], h["x-gitlab-realm"] = inst.id, inst.realm
		resp, _ := a.Server.Check(ctx, req)
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("%s: not allowed: %v", inst.id, resp)
		}
		got := map[string]string{}
		for _, hv := range ok.GetHeaders() {
			got[hv.GetHeader().GetKey()] = hv.GetHeader().GetValue()
		}
		if got["x-ccauthz-subject"] != inst.id || got["x-ccauthz-realm"] != inst.realm {
			t.Errorf("%s answered with subject %q realm %q", inst.id, got["x-ccauthz-subject"], got["x-ccauthz-realm"])
		}
		if md := resp.GetDynamicMetadata().AsMap(); !containsString(md, inst.id) {
			t.Errorf("%s: its instance id is not in the rate-limit metadata: %v", inst.id, md)
		}
	}
	rec := httptest.NewRecorder()
	a.Server.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/cache", nil))
	var stats map[string]policy.Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &stats); err != nil {
		t.Fatalf("/debug/cache: %v: %s", err, rec.Body)
	}
	s := stats["ai_gateway"]
	if !s.ClaimsKeyed || !reflect.DeepEqual(s.ClaimsRead, []string{"iss", "scopes"}) || s.Misses != 1 || s.Hits != 1 || s.CacheEntries != 1 {
		t.Errorf("two instances of one grant: /debug/cache %s", rec.Body)
	}
}

// containsString reports whether s occurs as a string anywhere in v.
func containsString(v any, s string) bool {
	switch t := v.(type) {
	case string:
		return t == s
	case map[string]any:
		for _, x := range t {
			if containsString(x, s) {
				return true
			}
		}
	case []any:
		for _, x := range t {
			if containsString(x, s) {
				return true
			}
		}
	}
	return false
}
