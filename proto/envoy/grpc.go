package envoy

import (
	"strconv"

	"google.golang.org/grpc/codes"

	"github.com/ccauthz/ccauthz/policy"
)

// gRPC response headers of a denial for a gRPC backend.
const (
	HeaderGRPCStatus  = "grpc-status"
	HeaderGRPCMessage = "grpc-message"
)

// GRPCCode is the gRPC status code a gRPC client gets for a denial with
// HTTP status status. Envoy would map the status itself (its
// httpToGrpcStatus turns 400 into INTERNAL and 404 into UNIMPLEMENTED),
// so ccauthz sets the code explicitly: 401 UNAUTHENTICATED and 403
// PERMISSION_DENIED as the Duo Workflow Service answers, and a fitting
// code for the rest.
func GRPCCode(status int) codes.Code {
	switch status {
	case 400:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 404:
		return codes.Unimplemented
	case 413, 429:
		return codes.ResourceExhausted
	case 500:
		return codes.Internal
	case 503:
		return codes.Unavailable
	default:
		return codes.PermissionDenied
	}
}

// GRPCMessage is the message of a denial for a gRPC client: the body's
// "detail" (403s) or "error" (401s) text, as the gateway's gRPC service
// words it, else the reason code.
func GRPCMessage(d *policy.Decision) string {
	for _, k := range []string{"detail", "error"} {
		if s, ok := d.Body[k].(string); ok && s != "" {
			return s
		}
	}
	return string(d.Reason)
}

// GRPCDenial returns the headers and body of a denial for a gRPC backend.
// Envoy answers a denied gRPC request with a trailers-only response: it
// keeps a grpc-status header the denial sets and turns the denial's body
// into grpc-message (percent-encoding it), so the body is the plain
// message and grpc-status carries the code. grpc-message is set as well,
// already encoded, for gateways that pass headers through unchanged.
func GRPCDenial(d *policy.Decision, status int) (headers map[string]string, body string) {
	msg := GRPCMessage(d)
	headers = make(map[string]string, len(d.ResponseHeaders)+2)
	for k, v := range d.ResponseHeaders {
		headers[k] = v
	}
	headers[HeaderGRPCStatus] = strconv.Itoa(int(GRPCCode(status)))
	headers[HeaderGRPCMessage] = PercentEncodeGRPC(msg)
	// The body is a proto3 string in the CheckResponse: a message that is
	// not UTF-8 (a policy echoing request bytes) would make the response
	// unencodable (gRPC INTERNAL, which a fail-open Envoy lets through) or
	// undecodable by Envoy. Repaired as every other string is.
	return headers, validUTF8(msg)
}

// PercentEncodeGRPC encodes a grpc-message value as the gRPC HTTP/2
// protocol asks: every byte outside printable ASCII (0x20-0x7E), and '%'
// itself, becomes %XX.
func PercentEncodeGRPC(s string) string {
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7E || c == '%' {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7E || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}
