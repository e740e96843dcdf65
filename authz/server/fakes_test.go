package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/policy"
)

// fakeVerifier accepts "Bearer good-<sub>" for any audience in auds and
// rejects everything else, as the real verifier's Result contract describes.
type fakeVerifier struct {
	auds  map[string]bool
	delay time.Duration // ignore ctx and return late (a misbehaving dependency)
	quiet bool          // do not record calls (benchmarks)
	mu    sync.Mutex
	calls []string // audiences asked for
}

func (f *fakeVerifier) Verify(ctx context.Context, authorization, audience string) token.Result {
	if !f.quiet {
		f.mu.Lock()
		f.calls = append(f.calls, audience)
		f.mu.Unlock()
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if authorization == "" {
		return token.Result{Status: token.StatusMissing, Reason: token.ReasonMissing}
	}
	raw, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return token.Result{Status: token.StatusMalformed, Reason: token.ReasonMalformedHeader}
	}
	sum := sha256.Sum256([]byte(raw))
	hash := hex.EncodeToString(sum[:])
	sub, ok := strings.CutPrefix(raw, "good-")
	if !ok {
		return token.Result{Status: token.StatusInvalid, Reason: token.ReasonBadSignature, Hash: hash, Message: "signature does not verify"}
	}
	if !f.auds[audience] {
		return token.Result{Status: token.StatusInvalid, Reason: token.ReasonBadAudience, Hash: hash}
	}
	return token.Result{
		Status: token.StatusValid, Reason: token.ReasonOK, Issuer: "dev", Kind: token.KindInstance, Hash: hash,
		Claims: &token.Claims{Subject: sub, JTI: "jti-" + sub, Scopes: []string{"complete_code"},
			Raw: map[string]any{"sub": sub, "scopes": []any{"complete_code"}}},
	}
}

// fakeDecider allows a valid token on /allowed and denies everything else
// with the AI gateway's bodies; hooks let tests make it slow, panic or fail.
type fakeDecider struct {
	revision string
	panics   bool
	err      error
	sleep    time.Duration // honours ctx
	routeDry bool
	quiet    bool // do not record inputs (benchmarks)
	noBody   bool // ReadsBody reports false: no rule of it reads the body
	// hold, when set, blocks every decision until it is closed (or ctx is
	// done); each blocked decision first sends on entered.
	hold, entered chan struct{}
	mu            sync.Mutex
	inputs        []policy.Input
}

func (f *fakeDecider) Revision() string { return f.revision }

func (f *fakeDecider) Decide(ctx context.Context, in *policy.Input) (policy.Decision, error) {
	if !f.quiet {
		f.mu.Lock()
		f.inputs = append(f.inputs, *in)
		f.mu.Unlock()
	}
	if f.panics {
		panic("boom")
	}
	if f.hold != nil {
		f.entered <- struct{}{}
		select {
		case <-f.hold:
		case <-ctx.Done():
			return policy.Decision{}, ctx.Err()
		}
	}
	if f.sleep > 0 {
		select {
		case <-time.After(f.sleep):
		case <-ctx.Done():
			return policy.Decision{}, ctx.Err()
		}
	}
	if f.err != nil {
		return policy.Decision{}, f.err
	}
	switch {
	case in.Token.Status == policy.TokenMissing:
		return policy.Decision{Status: 401, Reason: policy.ReasonMissingAuthorization,
			Body: map[string]any{"error": "No authorization header presented"}}, nil
	case in.Token.Status != policy.TokenValid:
		return policy.Decision{Status: 401, Reason: policy.ReasonInvalidToken,
			Body:            map[string]any{"error": "Forbidden by auth provider"},
			ResponseHeaders: map[string]string{"www-authenticate": `Bearer error="invalid_token"`}}, nil
	case in.Path != "/allowed":
		return policy.Decision{Status: 403, Reason: policy.ReasonInsufficientScope, Route: "other",
			Body: map[string]any{"detail": "Unauthorized to access code completions"}, DryRun: f.routeDry}, nil
	}
	return policy.Decision{Allow: true, Status: 200, Reason: policy.ReasonAllowed, Route: "allowed",
		UnitPrimitives: []string{"complete_code"},
		Headers:        map[string]string{"x-ccauthz-unit-primitive": "complete_code"},
		RateLimit:      policy.RateLimit{Entries: map[string]string{"instance_id": in.Token.Claims["sub"].(string)}},
	}, nil
}

func (d *fakeDecider) ReadsBody() bool { return !d.noBody }
