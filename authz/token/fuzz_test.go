package token

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary Authorization values through the whole
// parse/verify path against a real (loopback) issuer: no panic, no
// "internal error", and nothing but a well-formed result.
func FuzzVerify(f *testing.F) {
	keys := testKeys()
	iss := newFakeIssuer(f, keys[0])
	valid := mint(f, keys[0], iss.srv.URL, nil)
	parts := strings.Split(valid, ".")
	for _, s := range []string{
		"", "Bearer", "Bearer ", "bearer x.y.z", "Basic abc", "Bearer " + valid,
		"Bearer " + valid + ".", "Bearer " + parts[0] + "..", "Bearer " + parts[0] + "." + parts[1] + ".AAAA",
		"Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", "Bearer e30.e30.e30",
		"Bearer " + b64.EncodeToString([]byte(`{"alg":"RS256","kid":"x"}`)) + "." + b64.EncodeToString([]byte(`{"iss":"`+iss.srv.URL+`","exp":1e300}`)) + ".AA",
	} {
		f.Add(s)
	}
	v, err := NewVerifier([]IssuerConfig{iss.config("gitlab_com")}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()
	v.Start(f.Context())
	if err := v.WaitReady(f.Context()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, authz string) {
		r := v.Verify(t.Context(), authz, aud)
		if strings.Contains(r.Message, "internal error") {
			t.Fatalf("verification panicked on %q", authz)
		}
		switch r.Status {
		case StatusValid:
			if r.Claims == nil || r.Reason != ReasonOK || r.Hash == "" {
				t.Fatalf("valid result without claims/hash: %+v", r)
			}
		case StatusMissing, StatusMalformed, StatusInvalid, StatusUnavailable:
			if r.Claims != nil || r.Reason == ReasonOK {
				t.Fatalf("failure with claims or ok reason: %+v", r)
			}
		default:
			t.Fatalf("unknown status %q", r.Status)
		}
		// Again: a valid token is now answered by the cache (its first
		// hit decodes the cached payload), with the same result.
		again := v.Verify(t.Context(), authz, aud)
		if again.Status != r.Status || again.Reason != r.Reason || again.Hash != r.Hash ||
			(r.Claims != nil && (again.Claims == nil || !reflect.DeepEqual(again.Claims.Raw, r.Claims.Raw))) {
			t.Fatalf("second verification differs: %+v, first %+v", again, r)
		}
	})
}
