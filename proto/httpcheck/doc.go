// Package httpcheck maps the HTTP check protocols to ccauthz's decision
// contract and back: Envoy's ext_authz http_service, nginx auth_request,
// forward-auth (Caddy, Traefik) and the JSON API (POST /v1/check). A check
// request becomes the same envoy.Request the gRPC path builds, and a finished
// envoy.Outcome becomes the status, headers and body each gateway expects.
// It owns only the mapping: it does not verify tokens, evaluate policy,
// choose backends, count or log, and it never reads a request body except
// the JSON API's, which is bounded.
package httpcheck
