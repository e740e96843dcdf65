package devissuer

import (
	"context"
	"crypto"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/token"
)

func TestEnsureGeneratesOnceAndVerifies(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	first, err := Ensure(state)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created {
		t.Error("first run must generate a key")
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(state, Subdir):           0o700 | os.ModeDir,
		filepath.Join(state, Subdir, keyFile):  0o600,
		filepath.Join(state, Subdir, jwksFile): 0o600,
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("%s mode %v, want %v", path, info.Mode(), want)
		}
	}
	second, err := Ensure(state)
	if err != nil {
		t.Fatal(err)
	}
	if second.Created || !second.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(first.Key.Public()) {
		t.Error("second run must reuse the key")
	}

	// A minted token verifies against the JWKS file through the real verifier.
	v, err := token.NewVerifier([]token.IssuerConfig{second.IssuerConfig()}, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v.Start(ctx)
	defer v.Close()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := second.Mint("inst-1", "self-managed", []string{"complete_code"}, []string{"gitlab-ai-gateway"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res := v.Verify(ctx, "Bearer "+tok, "gitlab-ai-gateway")
	if res.Status != token.StatusValid || res.Claims.Subject != "inst-1" || res.Issuer != Name {
		t.Fatalf("verify = %+v", res)
	}
	if res := v.Verify(ctx, "Bearer "+tok, "gitlab-duo-workflow-service"); res.Status != token.StatusInvalid {
		t.Errorf("wrong audience accepted: %+v", res)
	}
}

func TestEnsureRejectsACorruptKey(t *testing.T) {
	state := t.TempDir()
	if err := os.MkdirAll(filepath.Join(state, Subdir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, Subdir, keyFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(state); err == nil {
		t.Fatal("a corrupt key must be an error, not silently replaced")
	}
}
