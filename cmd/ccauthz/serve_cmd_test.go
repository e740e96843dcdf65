package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

func TestServeUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "-h"}, exitOK, "usage: ccauthz serve"},
		{[]string{"serve", "--no-such-flag"}, exitUsage, "flag provided but not defined"},
		{[]string{"serve", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"serve", "--config", "/nonexistent/ccauthz.yaml"}, exitInvalid, "no such file or directory"},
	} {
		var stdout, stderr bytes.Buffer
		e := &env{stdout: &stdout, stderr: &stderr, now: time.Now}
		if code := run(context.Background(), e, tc.args); code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr.String())
		}
		// Help goes to stdout, problems to stderr (TestEveryCommandHelp).
		if got := stdout.String() + stderr.String(); !strings.Contains(got, tc.want) {
			t.Errorf("%v: output %q lacks %q", tc.args, got, tc.want)
		}
	}
}

// TestDevCheckRequestIsACheckRequest: the printed -d payload decodes as a
// CheckRequest the way grpcurl decodes it (protojson) and carries what the
// AI gateway checks.
func TestDevCheckRequestIsACheckRequest(t *testing.T) {
	s, err := devCheckRequest("/v2/code/completions", "header.payload.signature")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid([]byte(s)) || strings.ContainsRune(s, '\'') {
		t.Fatalf("not shell-pasteable JSON: %s", s)
	}
	var req authv3.CheckRequest
	if err := protojson.Unmarshal([]byte(s), &req); err != nil {
		t.Fatal(err)
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	if h.GetMethod() != "POST" || h.GetPath() != "/v2/code/completions" || h.GetHost() != devHost ||
		h.GetHeaders()["authorization"] != "Bearer header.payload.signature" ||
		h.GetHeaders()["x-gitlab-instance-id"] != devInstanceID || h.GetHeaders()["x-gitlab-realm"] != devRealm ||
		h.GetHeaders()["x-gitlab-authentication-type"] != "oidc" ||
		req.GetAttributes().GetContextExtensions()["backend"] != "ai_gateway" {
		t.Errorf("request = %v", &req)
	}
}
