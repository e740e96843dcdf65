package httpcheck

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ccauthz/ccauthz/proto/envoy"
)

// CheckRequest is the body of POST /v1/check (docs/http-checks.md). Method
// and Path are required; Path may carry the query ("/v2/x?a=1"). Host, when
// empty, falls back to headers["host"]. Header names are matched case
// insensitively and must be unique that way; authorization is given to the
// verifier only, x-ccauthz-* names are dropped. The original request's body
// is Body (any JSON value, taken as the body's JSON text; null means no
// body) or BodyBase64 (the body's bytes, standard base64, for bodies that
// are not JSON); at most one of them.
type CheckRequest struct {
	Backend    string            `json:"backend"`
	Method     string            `json:"method"`
	Path       string            `json:"path"`
	Host       string            `json:"host"`
	Headers    map[string]string `json:"headers"`
	Body       json.RawMessage   `json:"body"`
	BodyBase64 *string           `json:"body_base64"`
}

// MapJSON reads and maps a JSON API check: the body (at most maxBody bytes,
// one JSON object with only the CheckRequest fields) names the original
// request. The backend may also be named by ?backend= or X-Ccauthz-Backend
// on the check request; every source set must agree.
func MapJSON(r *http.Request, maxBody int64, dst *envoy.Request) error {
	*dst = envoy.Request{}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return badRequest("reading the request body: %v", err)
	}
	if int64(len(body)) > maxBody {
		return &Error{Status: http.StatusRequestEntityTooLarge, Message: "the request body is larger than " + strconv.FormatInt(maxBody, 10) + " bytes"}
	}
	var req CheckRequest
	if err := DecodeCheckRequest(body, &req); err != nil {
		return err
	}
	backend, err := backendName(req.Backend, r.URL.Query().Get(QueryBackend), r.Header.Get(HeaderBackend))
	if err != nil {
		return err
	}
	return fillJSON(dst, &req, backend)
}

// DecodeCheckRequest decodes one JSON object with only the CheckRequest
// fields; anything else (unknown fields, wrong types, trailing data) is a
// 400 *Error whose message names the problem.
func DecodeCheckRequest(body []byte, req *CheckRequest) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return badRequest("the request body is empty; want a JSON object")
		case errors.As(err, &syn):
			return badRequest("the request body is not JSON: %v (at byte %d)", syn, syn.Offset)
		case errors.As(err, &typ) && typ.Field == "":
			return badRequest("the request body must be a JSON object, got a JSON %s", typ.Value)
		case errors.As(err, &typ):
			return badRequest("field %q must be %s, got a JSON %s", typ.Field, jsonKind(typ), typ.Value)
		default:
			// Unknown fields and truncated input; encoding/json's messages
			// name the field, never a value.
			return badRequest("the request body is not a check request: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if dec.More() {
		return badRequest("the request body has data after the JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("the request body has data after the JSON object")
	}
	return nil
}

func jsonKind(e *json.UnmarshalTypeError) string {
	if strings.HasPrefix(e.Field, "headers") {
		return "an object of strings"
	}
	return "a string"
}

// jsonBody is the original request's body a JSON API check names.
func jsonBody(req *CheckRequest) (envoy.Body, error) {
	b := envoy.Body{DeclaredLength: -1}
	hasBody := len(req.Body) > 0 && string(req.Body) != "null"
	switch {
	case hasBody && req.BodyBase64 != nil:
		return b, badRequest("fields \"body\" and \"body_base64\" are exclusive; give at most one")
	case hasBody:
		b.Present, b.Data = true, req.Body
	case req.BodyBase64 != nil:
		data, err := base64.StdEncoding.DecodeString(*req.BodyBase64)
		if err != nil {
			return b, badRequest("field \"body_base64\" is not standard base64")
		}
		b.Present, b.Data = true, data
	}
	return b, nil
}

func fillJSON(dst *envoy.Request, req *CheckRequest, backend string) error {
	if req.Method == "" {
		return badRequest("field \"method\" is required")
	}
	if req.Path == "" {
		return badRequest("field \"path\" is required")
	}
	if err := checkMethod(req.Method); err != nil {
		return err
	}
	if err := checkTarget(req.Path); err != nil {
		return err
	}
	headers := make(map[string]string, len(req.Headers))
	for k, v := range req.Headers {
		lk := strings.ToLower(k)
		if k == "" || !isToken(k) {
			return badRequest("header name %q is not an HTTP token", truncate(k, 64))
		}
		if _, dup := headers[lk]; dup {
			// Two spellings of one name: which one wins would depend on map
			// order, so neither does.
			return badRequest("header %q is given twice (names are case-insensitive)", lk)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return badRequest("header %q has a CR, LF or NUL in its value", lk)
		}
		headers[lk] = v
	}
	dst.Authorization = headers["authorization"]
	delete(headers, "authorization")
	for k := range headers {
		if strings.HasPrefix(k, reservedPrefix) {
			delete(headers, k)
		}
	}
	host := req.Host
	if host == "" {
		host = headers["host"]
	}
	delete(headers, "host")
	if err := checkHost(host); err != nil {
		return err
	}
	body, err := jsonBody(req)
	if err != nil {
		return err
	}
	// The JSON API sends no partial-body signal of its own: a caller's
	// header of that name is not Envoy's.
	delete(headers, envoy.HeaderPartialBody)
	dst.Backend = backend
	dst.Body = body
	in := &dst.Input
	in.Method = strings.ToUpper(req.Method)
	in.Path, in.Query = envoy.SplitPath(req.Path)
	dst.RawPath = in.Path
	in.Host = strings.ToLower(host)
	in.Headers = headers
	dst.TraceParent = headers["traceparent"]
	dst.RequestID = headers["x-request-id"]
	return nil
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// truncate shortens s for an error message, on a byte boundary that keeps
// it valid for %q.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
