package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ccauthz/ccauthz/authz/jwks"
)

const keysUsage = `usage:
  ccauthz keys generate [--out FILE]
      Generate an RSA 2048 signing key (PKCS#8 PEM, mode 0600; default file
      signing-key.pem, never overwritten). Prints the kid (RFC 7638 thumbprint)
      on stdout. The private key is never printed.
  ccauthz keys jwks --key FILE [--key FILE]... [--out FILE]
      Print the public JWKS of the given keys (private or public PEM), for
      publication or for an air-gapped issuer's jwks_file.
`

// runKeys dispatches `ccauthz keys`.
func runKeys(_ context.Context, e *env, args []string) int {
	return subcommands(e, "keys", keysUsage, args, map[string]func([]string) int{
		"generate": func(a []string) int { return keysGenerate(e, a) },
		"jwks":     func(a []string) int { return keysJWKS(e, a) },
	})
}

// tokStrings is a repeatable string flag.
type tokStrings []string

func (s *tokStrings) String() string     { return strings.Join(*s, ",") }
func (s *tokStrings) Set(v string) error { *s = append(*s, v); return nil }

func keysFlagSet(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("ccauthz keys "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), keysUsage) }
	return fs
}

func keysGenerate(e *env, args []string) int {
	fs := keysFlagSet(e, "generate")
	out := fs.String("out", "signing-key.pem", "file to write the private key to (mode 0600, never overwritten)")
	if _, code, done := parseFlags(e, fs, args, false); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "ccauthz keys generate: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz keys generate: %v\n", err)
		return exitInvalid
	}
	pemBytes, err := jwks.MarshalPrivateKeyPEM(key)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz keys generate: %v\n", err)
		return exitInvalid
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			fmt.Fprintf(e.stderr, "ccauthz keys generate: %s already exists; not overwriting a key\n", *out)
		} else {
			fmt.Fprintf(e.stderr, "ccauthz keys generate: %v\n", err)
		}
		return exitInvalid
	}
	_, werr := f.Write(pemBytes)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(*out)
		fmt.Fprintf(e.stderr, "ccauthz keys generate: write %s: %v\n", *out, err)
		return exitInvalid
	}
	kid, err := jwks.Thumbprint(key.Public())
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz keys generate: %v\n", err)
		return exitInvalid
	}
	fmt.Fprintln(e.stdout, kid)
	fmt.Fprintf(e.stderr, "wrote an RSA 2048 private key to %s (mode 0600), kid %s\npublish it with: ccauthz keys jwks --key %s\n", *out, kid, *out)
	return exitOK
}

func keysJWKS(e *env, args []string) int {
	fs := keysFlagSet(e, "jwks")
	var keyFiles tokStrings
	fs.Var(&keyFiles, "key", "PEM key file (private or public); repeat for several keys")
	out := fs.String("out", "", "write the JWKS to this file instead of stdout")
	if _, code, done := parseFlags(e, fs, args, false); done {
		return code
	}
	if fs.NArg() > 0 || len(keyFiles) == 0 {
		fmt.Fprint(e.stderr, "ccauthz keys jwks: give at least one --key FILE and no other argument\n")
		return exitUsage
	}
	pubs := make([]crypto.PublicKey, 0, len(keyFiles))
	failed := false
	for _, p := range keyFiles {
		data, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", p, err)
			failed = true
			continue
		}
		pub, err := jwks.ParsePublicKeyPEM(data)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", p, err)
			failed = true
			continue
		}
		pubs = append(pubs, pub)
	}
	if failed {
		return exitInvalid
	}
	doc, err := jwks.MarshalJWKS(pubs)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz keys jwks: %v\n", err)
		return exitInvalid
	}
	if *out == "" {
		_, _ = e.stdout.Write(doc)
		return exitOK
	}
	if err := keysWriteFileAtomic(*out, doc, 0o644); err != nil {
		fmt.Fprintf(e.stderr, "ccauthz keys jwks: %v\n", err)
		return exitInvalid
	}
	return exitOK
}

// keysWriteFileAtomic writes data next to path and renames it into place, so a
// watcher (an air-gapped issuer's jwks_file) never reads a half-written file.
func keysWriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), perm)); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}

// tokReadSmall reads at most limit bytes from r, failing beyond.
func tokReadSmall(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("input larger than %d bytes", limit)
	}
	return data, nil
}
