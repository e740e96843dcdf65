package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/jwks"
	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/catalog"
)

// tokCLI runs ccauthz in-process with stdin and the real clock (tokens must
// verify against it) and returns exit code, stdout and stderr.
func tokCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr, now: time.Now}
	code := run(context.Background(), e, args)
	return code, stdout.String(), stderr.String()
}

// tokSetup generates a key and an air-gapped issuer configuration for it.
func tokSetup(t *testing.T) (dir, keyFile, config, kid string) {
	t.Helper()
	dir = t.TempDir()
	keyFile = filepath.Join(dir, "key.pem")
	code, out, errOut := tokCLI(t, "", "keys", "generate", "--out", keyFile)
	if code != exitOK {
		t.Fatalf("keys generate: %d %s", code, errOut)
	}
	kid = strings.TrimSpace(out)
	jwksFile := filepath.Join(dir, "jwks.json")
	if code, _, errOut := tokCLI(t, "", "keys", "jwks", "--key", keyFile, "--out", jwksFile); code != exitOK {
		t.Fatalf("keys jwks: %d %s", code, errOut)
	}
	config = filepath.Join(dir, "config.yaml")
	yaml := "listen: 127.0.0.1:0  # other keys belong to the server\nissuers:\n" +
		"  - name: my_instance\n    issuer: https://gitlab.example.com\n    jwks_file: jwks.json\n    realm: self-managed\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, keyFile, config, kid
}

func TestKeysGenerateAndJWKS(t *testing.T) {
	_, keyFile, _, kid := tokSetup(t)
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", st.Mode(), err)
	}
	data, _ := os.ReadFile(keyFile)
	key, err := jwks.ParsePrivateKeyPEM(data)
	if err != nil || !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("not a PKCS#8 PEM: %v", err)
	}
	if want, _ := jwks.Thumbprint(key.Public()); kid != want {
		t.Fatalf("printed kid %s, thumbprint is %s", kid, want)
	}
	// Never overwrite a key.
	if code, _, errOut := tokCLI(t, "", "keys", "generate", "--out", keyFile); code != exitInvalid || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second generate: %d %s", code, errOut)
	}
	code, out, _ := tokCLI(t, "", "keys", "jwks", "--key", keyFile)
	if code != exitOK || strings.Contains(out, `"d"`) || strings.Contains(out, "PRIVATE") {
		t.Fatalf("keys jwks: %d %s", code, out)
	}
	keys, err := jwks.ParseJWKS([]byte(out))
	if err != nil || len(keys) != 1 || keys[0].KID != kid {
		t.Fatalf("JWKS does not carry the key: %v %+v", err, keys)
	}
	if code, _, errOut := tokCLI(t, "", "keys", "jwks", "--key", keyFile, "--key", keyFile); code != exitInvalid || !strings.Contains(errOut, "given twice") {
		t.Fatalf("duplicate key: %d %s", code, errOut)
	}
	if code, _, _ := tokCLI(t, "", "keys", "jwks"); code != exitUsage {
		t.Fatalf("no --key: %d", code)
	}
}

func TestTokenMintAndInspectVerify(t *testing.T) {
	dir, keyFile, config, kid := tokSetup(t)
	code, out, errOut := tokCLI(t, "", "token", "mint", "--key", keyFile, "--issuer", "https://gitlab.example.com",
		"--subject", "8f6e4253-58ce-42b9-869c-97f5c2287ad2", "--scopes", "complete_code,duo_chat",
		"--audience", "gitlab-ai-gateway", "--claim", "skip_usage_cutoff=true", "--claim", "note=hello", "--instance-id", "iid-1")
	if code != exitOK {
		t.Fatalf("mint: %d %s", code, errOut)
	}
	tok := strings.TrimSpace(out)
	h, c, err := token.DecodeUnverified(tok)
	if err != nil {
		t.Fatal(err)
	}
	if h["kid"] != kid || h["typ"] != "JWT" || h["alg"] != "RS256" {
		t.Fatalf("header %v", h)
	}
	iat, nbf, exp := c["iat"].(float64), c["nbf"].(float64), c["exp"].(float64)
	if nbf != iat-5 || exp != iat+3600 || c["skip_usage_cutoff"] != true || c["note"] != "hello" ||
		c["gitlab_realm"] != "self-managed" || c["gitlab_instance_id"] != "iid-1" || c["jti"] == "" {
		t.Fatalf("claims %v", c)
	}

	tokFile := filepath.Join(dir, "token.jwt")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = tokCLI(t, "", "token", "inspect", tokFile, "--config", config, "--audience", "gitlab-ai-gateway")
	if code != exitOK || !strings.Contains(out, "verification: valid for gitlab-ai-gateway (issuer my_instance, kind instance)") ||
		!regexp.MustCompile(`\(in (1h0m0s|59m\d+s)\)`).MatchString(out) || strings.Contains(out+errOut, tok) {
		t.Fatalf("inspect: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = tokCLI(t, tok, "token", "inspect", "-", "--config", config, "--audience", "gitlab-duo-workflow-service")
	if code != exitInvalid || !strings.Contains(out, "verification: invalid (bad_audience)") {
		t.Fatalf("inspect wrong audience: %d\n%s", code, out)
	}
	// Without --config: decode only.
	if code, out, _ := tokCLI(t, "Bearer "+tok, "token", "inspect", "-"); code != exitOK || !strings.Contains(out, `"scopes": [`) {
		t.Fatalf("inspect stdin: %d %s", code, out)
	}
}

func TestTokenMintAddOnsFromCatalog(t *testing.T) {
	_, keyFile, _, _ := tokSetup(t)
	code, out, errOut := tokCLI(t, "", "token", "mint", "--key", keyFile, "--issuer", "https://gitlab.example.com",
		"--subject", "instance-uuid", "--add-ons", "duo_pro")
	if code != exitOK {
		t.Fatalf("mint: %d %s", code, errOut)
	}
	_, c, err := token.DecodeUnverified(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	g := catalog.Example().Grant([]string{"duo_pro"}, time.Now())
	if got := tokAnyStrings(c["scopes"]); !slices.Equal(got, g.Scopes) || len(got) == 0 {
		t.Fatalf("scopes %v, catalog grants %v", got, g.Scopes)
	}
	if got := tokAnyStrings(c["aud"]); !slices.Equal(got, g.Audiences) {
		t.Fatalf("aud %v, catalog grants %v", got, g.Audiences)
	}
}

func tokAnyStrings(v any) []string {
	var out []string
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, &out)
	return out
}

func TestTokenUsageErrors(t *testing.T) {
	_, keyFile, _, _ := tokSetup(t)
	base := []string{"token", "mint", "--key", keyFile, "--issuer", "https://x", "--subject", "s"}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"token"}, exitUsage, "usage:"},
		{"scopes and add-ons", append(slices.Clone(base), "--scopes", "a", "--add-ons", "duo_pro"), exitUsage, "exactly one of --scopes and --add-ons"},
		{"no audience", append(slices.Clone(base), "--scopes", "a"), exitUsage, "no audience"},
		{"bad claim", append(slices.Clone(base), "--scopes", "a", "--audience", "x", "--claim", "novalue"), exitUsage, `--claim "novalue" is not k=v`},
		{"reserved claim", append(slices.Clone(base), "--scopes", "a", "--audience", "x", "--claim", "exp=1"), exitInvalid, `extra claim "exp" would replace a standard claim`},
		{"missing key file", []string{"token", "mint", "--key", keyFile + ".nope", "--issuer", "i", "--subject", "s", "--scopes", "a", "--audience", "x"}, exitInvalid, "no such file"},
		{"inspect garbage", []string{"token", "inspect", "not.a-token!"}, exitInvalid, "no such file, and not a token"},
		{"inspect malformed JWT", []string{"token", "inspect", "abc.def.ghi"}, exitInvalid, "not a JWT"},
		{"inspect misspelled file", []string{"token", "inspect", "tokne.jwt"}, exitInvalid, "tokne.jwt: no such file, and not a token"},
		{"empty subject", []string{"token", "mint", "--key", keyFile, "--issuer", "i", "--subject", "", "--scopes", "a", "--audience", "x"}, exitUsage, "--subject is empty"},
		{"blank issuer", []string{"token", "mint", "--key", keyFile, "--issuer", " ", "--subject", "s", "--scopes", "a", "--audience", "x"}, exitUsage, "--issuer is empty"},
		{"missing subject", []string{"token", "mint", "--key", keyFile, "--issuer", "i", "--scopes", "a", "--audience", "x"}, exitUsage, "--key, --issuer and --subject are required"},
		{"inspect config without audience", []string{"token", "inspect", "a.b.c", "--config", "x.yaml"}, exitUsage, "--config and --audience go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := tokCLI(t, "", tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, errOut, tt.code, tt.want)
			}
		})
	}
}

func TestTokenInspectBadConfig(t *testing.T) {
	dir, keyFile, _, _ := tokSetup(t)
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("issuers:\n  - name: x\n    issuer: i\n    algorithms: [HS256]\n    jwks_file: k.json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, out, _ := tokCLI(t, "", "token", "mint", "--key", keyFile, "--issuer", "i", "--subject", "s", "--scopes", "a", "--audience", "x")
	code, stdout, errOut := tokCLI(t, "", "token", "inspect", strings.TrimSpace(out), "--config", bad, "--audience", "x")
	if code != exitInvalid || !strings.Contains(errOut, bad+`:4:17: algorithm "HS256" is never accepted`) {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	// Nothing of the token is printed before the config is known good.
	if stdout != "" {
		t.Errorf("printed before failing on --config:\n%s", stdout)
	}
	code, stdout, _ = tokCLI(t, "", "token", "inspect", strings.TrimSpace(out), "--config", bad+".missing", "--audience", "x")
	if code != exitInvalid || stdout != "" {
		t.Errorf("missing --config: exit %d, stdout %q", code, stdout)
	}
}
