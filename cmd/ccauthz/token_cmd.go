package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/ccauthz/ccauthz/authz/jwks"
	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/catalog"
)

const tokenUsage = `usage:
  ccauthz token mint --key FILE --issuer URL --subject ID
                     (--scopes a,b | --add-ons duo_pro[,...] [--catalog PATH])
                     [--audience A]... [--realm self-managed] [--ttl 1h]
                     [--claim k=v]... [--instance-id ID]
      Sign a Cloud Connector token as GitLab does (RS256, kid = thumbprint,
      iat, nbf = iat-5s, exp = iat+ttl, random jti). With --add-ons the scopes
      and audiences are those the catalog grants (the bundled example catalog
      unless --catalog); --audience then replaces the computed audiences.
      --claim values are JSON when they parse as JSON, else strings.
  ccauthz token inspect TOKEN|FILE|- [--config FILE --audience A]
      Print the header and claims (unverified) and when the token expires.
      With --config (a file with an issuers list) and --audience it fetches
      the issuer's keys, verifies the token and says why it does not verify.
      Prefer FILE or - (stdin): a token on the command line lands in ps and
      shell history.
`

// runToken dispatches `ccauthz token`.
func runToken(ctx context.Context, e *env, args []string) int {
	return subcommands(e, "token", tokenUsage, args, map[string]func([]string) int{
		"mint":    func(a []string) int { return tokenMint(e, a) },
		"inspect": func(a []string) int { return tokenInspect(ctx, e, a) },
	})
}

func tokFlagSet(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("ccauthz token "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), tokenUsage) }
	return fs
}

// tokSplitList splits a comma-separated flag value, dropping empty items.
func tokSplitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func tokenMint(e *env, args []string) int {
	fs := tokFlagSet(e, "mint")
	keyFile := fs.String("key", "", "PEM private key (RSA or EC)")
	issuer := fs.String("issuer", "", "iss claim (the instance URL, exactly as verifiers configure it)")
	subject := fs.String("subject", "", "sub claim (the instance UUID for instance tokens)")
	scopes := fs.String("scopes", "", "comma-separated unit primitives")
	addOns := fs.String("add-ons", "", "comma-separated add-ons: scopes and audiences from the catalog")
	catPath := fs.String("catalog", "", "catalog for --add-ons (default: the bundled example catalog)")
	realm := fs.String("realm", "self-managed", `gitlab_realm claim ("" to omit)`)
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	instanceID := fs.String("instance-id", "", "gitlab_instance_id claim")
	var audiences, claims tokStrings
	fs.Var(&audiences, "audience", "aud value; repeat for several")
	fs.Var(&claims, "claim", "extra claim k=v; repeat for several")
	if _, code, done := parseFlags(e, fs, args, false); done {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "ccauthz token mint: "+format+"\n", a...)
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, f := range []struct {
		name, v string
	}{{"key", *keyFile}, {"issuer", *issuer}, {"subject", *subject}} {
		// `--subject "$(some-command)"` whose command failed gives an empty
		// value: say so, not that the flag is missing.
		if set[f.name] && strings.TrimSpace(f.v) == "" {
			return usageErr("--%s is empty", f.name)
		}
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case *keyFile == "" || *issuer == "" || *subject == "":
		return usageErr("--key, --issuer and --subject are required")
	case (*scopes == "") == (*addOns == ""):
		return usageErr("give exactly one of --scopes and --add-ons")
	case *catPath != "" && *addOns == "":
		return usageErr("--catalog only goes with --add-ons")
	case *ttl <= 0:
		return usageErr("--ttl must be positive")
	}
	extra := map[string]any{}
	for _, c := range claims {
		k, v, ok := strings.Cut(c, "=")
		if !ok || k == "" {
			return usageErr("--claim %q is not k=v", c)
		}
		var val any
		if err := json.Unmarshal([]byte(v), &val); err != nil {
			val = v
		}
		extra[k] = val
	}
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz token mint: %v\n", err)
		return exitInvalid
	}
	key, err := jwks.ParsePrivateKeyPEM(data)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz token mint: %s: %v\n", *keyFile, err)
		return exitInvalid
	}
	now := e.now()
	mc := token.MintClaims{
		Issuer: *issuer, Subject: *subject, Audience: audiences, Realm: *realm,
		InstanceID: *instanceID, IssuedAt: now, TTL: *ttl, Extra: extra,
	}
	if *addOns != "" {
		cat := catalog.Example()
		if *catPath != "" {
			if cat, err = catalog.Load(*catPath); err != nil {
				printProblems(e.stderr, err)
				return exitInvalid
			}
		}
		held := tokSplitList(*addOns)
		for _, a := range held {
			if _, ok := cat.AddOns[a]; !ok {
				fmt.Fprintf(e.stderr, "ccauthz token mint: warning: add-on %q is not in the catalog%s; it grants nothing\n", a, catalog.DidYouMean(a, catKeys(cat.AddOns)))
			}
		}
		g := cat.Grant(held, now)
		mc.Scopes = g.Scopes
		if len(mc.Audience) == 0 {
			mc.Audience = g.Audiences
		}
	} else {
		mc.Scopes = tokSplitList(*scopes)
	}
	if len(mc.Audience) == 0 {
		return usageErr("no audience: give --audience (the backend's jwt_aud)")
	}
	tok, err := token.Mint(key, mc)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz token mint: %v\n", err)
		return exitInvalid
	}
	fmt.Fprintln(e.stdout, tok)
	fmt.Fprintf(e.stderr, "minted a token for %s: aud %s, %d scopes, expires %s\n",
		*subject, strings.Join(mc.Audience, ","), len(mc.Scopes), now.Add(*ttl).UTC().Format(time.RFC3339))
	return exitOK
}

// tokJWTShape matches a compact JWS as given on a command line: three
// base64url segments, optionally after "Bearer ".
var tokJWTShape = regexp.MustCompile(`^(?i:bearer\s+)?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)

// tokRead returns the token named by arg: - is stdin, an existing file is
// read, an argument shaped like a JWT is the token itself, and anything
// else is a file name that does not exist (a misspelled token.jwt must not be
// decoded as a token). Surrounding space and a leading "Bearer " are removed.
func tokRead(e *env, arg string) (string, error) {
	var data []byte
	var err error
	switch {
	case arg == "-":
		data, err = tokReadSmall(e.stdin, 1<<20)
	default:
		st, serr := os.Stat(arg)
		switch {
		case serr == nil && st.Mode().IsRegular():
			var f *os.File
			if f, err = os.Open(arg); err == nil {
				data, err = tokReadSmall(f, 1<<20)
				f.Close()
			}
		case serr == nil:
			return "", fmt.Errorf("%s is not a regular file", arg)
		case tokJWTShape.MatchString(strings.TrimSpace(arg)):
			data = []byte(arg)
		default:
			return "", fmt.Errorf("%s: no such file, and not a token (a JWT is three dot-separated base64url parts)", arg)
		}
	}
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if s, t, ok := strings.Cut(tok, " "); ok && strings.EqualFold(s, "Bearer") {
		tok = strings.TrimSpace(t)
	}
	if tok == "" {
		return "", errors.New("no token given")
	}
	return tok, nil
}

func tokenInspect(ctx context.Context, e *env, args []string) int {
	fs := tokFlagSet(e, "inspect")
	config := fs.String("config", "", "YAML file with an issuers list: verify the token")
	audience := fs.String("audience", "", "the backend's jwt_aud to verify for (with --config)")
	timeout := fs.Duration("timeout", 15*time.Second, "how long to wait for the issuer's keys (with --config)")
	pos, code, done := parseFlags(e, fs, args, true)
	if done {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprint(e.stderr, "ccauthz token inspect: give exactly one TOKEN, FILE or -\n")
		return exitUsage
	}
	if (*config == "") != (*audience == "") {
		fmt.Fprint(e.stderr, "ccauthz token inspect: --config and --audience go together\n")
		return exitUsage
	}
	// The config is read first: a bad --config fails before anything of
	// the token is printed.
	var v *token.Verifier
	if *config != "" {
		issuers, err := token.ReadIssuersFile(*config)
		if err != nil {
			printProblems(e.stderr, err)
			return exitInvalid
		}
		if v, err = token.NewVerifier(issuers, token.Options{Now: e.now}); err != nil {
			fmt.Fprintf(e.stderr, "ccauthz token inspect: %v\n", err)
			return exitInvalid
		}
	}
	tok, err := tokRead(e, pos[0])
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz token inspect: %v\n", err)
		return exitInvalid
	}
	header, claims, err := token.DecodeUnverified(tok)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz token inspect: not a JWT: %v\n", err)
		return exitInvalid
	}
	fmt.Fprintf(e.stdout, "header (unverified):\n%s\nclaims (unverified):\n%s\n", tokIndent(header), tokIndent(claims))
	fmt.Fprintf(e.stdout, "expiry: %s\n", tokExpiry(claims["exp"], e.now()))
	if v == nil {
		return exitOK
	}
	defer v.Close()
	v.Start(ctx)
	// Only the claimed issuer's keys matter; wait for all of them at most
	// --timeout, and let Verify say "keys unavailable" if they did not come.
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	err = v.WaitReady(wctx)
	cancel()
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: %v\n", err)
	}
	r := v.Verify(ctx, "Bearer "+tok, *audience)
	if r.Status == token.StatusValid {
		fmt.Fprintf(e.stdout, "verification: valid for %s (issuer %s, kind %s)\n", *audience, r.Issuer, r.Kind)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "verification: %s (%s): %s\n", r.Status, r.Reason, r.Message)
	if r.Status == token.StatusUnavailable {
		for _, st := range v.Status() {
			if st.Issuer == r.Issuer && st.LastError != "" {
				fmt.Fprintf(e.stdout, "issuer %s: last key fetch error: %s\n", st.Issuer, st.LastError)
			}
		}
	}
	return exitInvalid
}

func tokIndent(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(bytes.TrimSpace(b))
}

// tokExpiry describes exp relative to now, in words.
func tokExpiry(exp any, now time.Time) string {
	f, ok := exp.(float64)
	if !ok {
		return "none (no numeric exp claim: every verifier rejects this token)"
	}
	t := time.Unix(int64(f), 0).UTC()
	d := t.Sub(now).Round(time.Second)
	if d > 0 {
		return fmt.Sprintf("%s (in %s)", t.Format(time.RFC3339), d)
	}
	return fmt.Sprintf("%s (expired %s ago)", t.Format(time.RFC3339), -d)
}
