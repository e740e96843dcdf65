package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// inputDocument is the JSON form of Input: the Rego input document, plus the
// token hash (which Rego never sees).
type inputDocument struct {
	Backend string `json:"backend"`
	Request struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Query   string            `json:"query"`
		Host    string            `json:"host"`
		Headers map[string]string `json:"headers"`
		// Body is the JSON request body; BodyStatus defaults to "ok" when
		// a body is given and to "absent" otherwise.
		Body       json.RawMessage `json:"body"`
		BodyStatus string          `json:"body_status"`
	} `json:"request"`
	Token struct {
		Status string         `json:"status"`
		Reason string         `json:"reason"`
		Issuer string         `json:"issuer"`
		Kind   string         `json:"kind"`
		Claims map[string]any `json:"claims"`
		Hash   string         `json:"hash"`
	} `json:"token"`
	// Identity is accepted (the generated test inputs carry it) and ignored:
	// Decide always computes it from the token and the headers.
	Identity json.RawMessage `json:"identity"`
}

var (
	tokenStatuses = []string{TokenValid, TokenMissing, TokenMalformed, TokenInvalid, TokenUnavailable}
	bodyStatuses  = []string{BodyAbsent, BodyOK, BodyTooLarge, BodyTruncated, BodyInvalid}
)

// ParseInputJSON reads an Input from its JSON form, the Rego input document
// (docs/architecture.md) with an optional token.hash. Header names are lower
// cased; an Authorization header is rejected (the policy only sees verified
// claims). Unknown fields are errors.
func ParseInputJSON(data []byte) (*Input, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc inputDocument
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	if dec.More() {
		return nil, errors.New("policy input: more than one JSON value")
	}
	var problems []string
	if doc.Request.Method == "" {
		problems = append(problems, "request.method is required")
	}
	if !strings.HasPrefix(doc.Request.Path, "/") {
		problems = append(problems, fmt.Sprintf("request.path %q must start with \"/\"", doc.Request.Path))
	}
	if !slices.Contains(tokenStatuses, doc.Token.Status) {
		problems = append(problems, fmt.Sprintf("token.status %q must be one of %s", doc.Token.Status, strings.Join(tokenStatuses, ", ")))
	}
	in := &Input{
		Backend: doc.Backend,
		Method:  doc.Request.Method,
		Path:    doc.Request.Path,
		Query:   doc.Request.Query,
		Host:    doc.Request.Host,
		Headers: make(map[string]string, len(doc.Request.Headers)),
		Token: TokenInput{
			Status: doc.Token.Status, Reason: doc.Token.Reason, Issuer: doc.Token.Issuer,
			Kind: doc.Token.Kind, Claims: doc.Token.Claims, Hash: doc.Token.Hash,
		},
	}
	in.Body.Status = doc.Request.BodyStatus
	if len(doc.Request.Body) > 0 {
		if in.Body.Status == "" {
			in.Body.Status = BodyOK
		}
		in.Body.Size = len(doc.Request.Body)
		if err := json.Unmarshal(doc.Request.Body, &in.Body.JSON); err != nil {
			problems = append(problems, fmt.Sprintf("request.body: %v", err))
		}
	}
	if in.Body.Status != "" && !slices.Contains(bodyStatuses, in.Body.Status) {
		problems = append(problems, fmt.Sprintf("request.body_status %q must be one of %s", in.Body.Status, strings.Join(bodyStatuses, ", ")))
	}
	if in.Body.Status == BodyOK && len(doc.Request.Body) == 0 {
		problems = append(problems, "request.body_status \"ok\" needs request.body")
	}
	for k, v := range doc.Request.Headers {
		lk := strings.ToLower(k)
		if lk == "authorization" {
			problems = append(problems, "request.headers must not carry authorization: give the verification outcome in token")
			continue
		}
		in.Headers[lk] = v
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("policy input: %s", strings.Join(problems, "; "))
	}
	return in, nil
}
