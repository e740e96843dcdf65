package envoy

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/ccauthz/ccauthz/policy"
)

// DefaultMaxBodyBytes is the default bound on a request body given to the
// policy. It matches max_request_bytes of the body routes in
// deploy/envoy.yaml: a larger limit on Envoy's side would only send bodies
// ccauthz then calls too_large.
const DefaultMaxBodyBytes = 1 << 20

// HeaderPartialBody is the header Envoy adds to a check whose request body
// it buffered (with_request_body): "true" when allow_partial_message cut the
// body at max_request_bytes, "false" when the body is whole. Envoy drops a
// client's own copy of the header, so only Envoy can set it.
const HeaderPartialBody = "x-envoy-auth-partial-body"

// Body is a request body as a check carried it, before decoding. Every
// protocol mapping fills one and DecodeBody turns it into the policy's
// BodyInput, so every protocol gets the same statuses.
type Body struct {
	// Present is true when the check carried a body at all (Envoy buffered
	// one, the JSON API named one). A check without one is absent, which is
	// not the same as an empty body.
	Present bool
	// Data is the body as received (possibly cut by the sender). It is
	// never logged.
	Data []byte
	// Partial is true when the sender says it cut the body (Envoy's
	// x-envoy-auth-partial-body: true).
	Partial bool
	// DeclaredLength is the original request's Content-Length, -1 when
	// unknown (absent, unparsable, or describing another message).
	DeclaredLength int64
}

// PartialBody reads the value of HeaderPartialBody: only "false" says the
// body is whole; anything else ("true", two joined values, garbage) counts
// as cut, so an odd header can never make a cut body look whole.
func PartialBody(v string) bool {
	return !strings.EqualFold(strings.TrimSpace(v), "false")
}

// EnvoyBody reads the body of an Envoy check: raw_body (pack_as_bytes) or
// body, the partial-body header Envoy adds whenever it buffered one, and the
// original Content-Length from headers (lower-case names). The header is
// removed from headers: it describes the check, not the client's request.
func EnvoyBody(raw []byte, body string, headers map[string]string) Body {
	b := Body{DeclaredLength: -1}
	partial, sent := headers[HeaderPartialBody]
	if sent {
		delete(headers, HeaderPartialBody)
		b.Partial = PartialBody(partial)
	}
	switch {
	case len(raw) > 0:
		b.Data = raw
	case body != "":
		b.Data = []byte(body)
	}
	b.Present = sent || len(b.Data) > 0
	if cl, ok := headers["content-length"]; ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(cl), 10, 64); err == nil && n >= 0 {
			b.DeclaredLength = n
		}
	}
	return b
}

// DecodeBody is the one place a check's body becomes the policy's
// BodyInput: absent when none was carried; too_large when it (or the
// length the request declares) exceeds max bytes, without reading it;
// truncated when the sender cut it or it is shorter than the declared
// length; invalid when it is longer than declared, empty, or not exactly
// one JSON value; otherwise ok with the decoded JSON. It decodes at most
// once per check and never logs or quotes the body.
func DecodeBody(b Body, max int) policy.BodyInput {
	if !b.Present {
		return policy.BodyInput{Status: policy.BodyAbsent}
	}
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	in := policy.BodyInput{Size: len(b.Data)}
	switch {
	case len(b.Data) > max || b.DeclaredLength > int64(max):
		in.Status = policy.BodyTooLarge
	case b.Partial || b.DeclaredLength > int64(len(b.Data)):
		in.Status = policy.BodyTruncated
	case b.DeclaredLength >= 0 && b.DeclaredLength < int64(len(b.Data)):
		// More bytes than the request said it had: not the request's body.
		in.Status = policy.BodyInvalid
	default:
		var v any
		if len(b.Data) == 0 || json.Unmarshal(b.Data, &v) != nil {
			in.Status = policy.BodyInvalid
			return in
		}
		in.Status, in.JSON = policy.BodyOK, v
	}
	return in
}
