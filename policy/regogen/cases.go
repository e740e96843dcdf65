package regogen

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/identity"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// Case is one generated test: an input document and the decision it must
// produce. The same cases drive the `opa test` suites and the Go differential
// test of policy.Decide.
type Case struct {
	// Route is the manifest route id the case exercises; "" for cases about
	// the policy as a whole (no route).
	Route string
	// Name is the test name without the "test_" prefix.
	Name string
	// Input is the Rego input document (backend, request, token).
	Input map[string]any
	// Expect is what the decision must say.
	Expect Expect
}

// Expect is the part of a decision a case checks.
type Expect struct {
	Allow  bool
	Status int
	Reason string
	Body   map[string]any
	DryRun bool
	// Route is the route id the decision must name.
	Route string
	// UnitPrimitives, when not nil, are the unit primitives the decision
	// must report as checked.
	UnitPrimitives []string
	// Headers and RateLimitEntries, when not nil, must be contained in the
	// decision's upstream headers and rate-limit entries.
	Headers          map[string]string
	RateLimitEntries map[string]string
}

// File is the test file the case is written to.
func (c Case) File() string {
	if c.Route == "" {
		return "policy_test.rego"
	}
	return c.Route + "_test.rego"
}

// Values used by generated inputs.
const (
	testInstanceID   = "00000000-0000-4000-8000-000000000001"
	testUserID       = "test-global-user-id"
	testRealm        = "saas"
	testUnknownUP    = "not_a_unit_primitive"
	testForeignAud   = "gitlab-foreign-backend"
	testMismatch     = "mismatched-value"
	testIssuerName   = "gitlab_com"
	testIssuerURL    = "https://gitlab.com"
	testNoRoutePath  = "/ccauthz/no-such-route"
	testParamValue   = "example"
	testWildcardRest = "v1/messages"
)

func headerValue(key string) string {
	switch key {
	case "x-gitlab-realm":
		return testRealm
	case "x-gitlab-instance-id":
		return testInstanceID
	case "x-gitlab-global-user-id":
		return testUserID
	}
	return "test-" + strings.TrimPrefix(key, "x-")
}

// examplePath is a concrete path the route's pattern matches.
func examplePath(r manifest.Route) string {
	if len(r.Segments) == 0 {
		return "/"
	}
	parts := make([]string, 0, len(r.Segments))
	for _, s := range r.Segments {
		switch s.Kind {
		case manifest.SegLiteral:
			parts = append(parts, s.Value)
		case manifest.SegParam:
			parts = append(parts, testParamValue)
		case manifest.SegWildcard:
			parts = append(parts, testWildcardRest)
		}
	}
	return "/" + strings.Join(parts, "/")
}

// renderDetail mirrors the core's detail template: {unit_primitive} and the
// route's path parameters.
func renderDetail(r manifest.Route, up string) string {
	d := strings.ReplaceAll(r.Detail, "{unit_primitive}", up)
	for _, p := range r.Params() {
		d = strings.ReplaceAll(d, "{"+p+"}", testParamValue)
	}
	return d
}

// validInput builds an input that the route allows: an instance token with
// the route's unit primitives in its scopes, the backend's audience, and
// headers that match every bound claim.
func validInput(m *manifest.Manifest, r manifest.Route, scopes []string, upHeader string) map[string]any {
	headers := map[string]any{"x-gitlab-authentication-type": "oidc"}
	claims := map[string]any{
		"iss":    testIssuerURL,
		"aud":    []any{m.Audience},
		"scopes": toAny(scopes),
		"jti":    "test-jti",
	}
	for _, b := range m.Bindings {
		if b.TokenKind == "user" {
			continue
		}
		v := headerValue(b.HeaderKey())
		headers[b.HeaderKey()] = v
		claims[b.Claim] = v
	}
	if _, ok := headers["x-gitlab-global-user-id"]; !ok {
		headers["x-gitlab-global-user-id"] = testUserID
	}
	if upHeader != "" {
		headers["x-gitlab-unit-primitive"] = upHeader
	}
	method := "POST"
	if len(r.Methods) > 0 {
		method = r.Methods[0]
	}
	return map[string]any{
		"backend": m.Backend,
		"request": map[string]any{
			"method":  method,
			"path":    examplePath(r),
			"query":   "",
			"host":    "cloud.gitlab.com",
			"headers": headers,
		},
		"token": map[string]any{
			"status": "valid",
			"reason": "ok",
			"issuer": testIssuerName,
			"kind":   "instance",
			"claims": claims,
		},
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// with returns a deep copy of in with fn applied.
func with(in map[string]any, fn func(req, headers, token, claims map[string]any)) map[string]any {
	out := deepCopy(in).(map[string]any)
	req := out["request"].(map[string]any)
	tok := out["token"].(map[string]any)
	claims, _ := tok["claims"].(map[string]any)
	fn(req, req["headers"].(map[string]any), tok, claims)
	return out
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}

func deny(route string, status int, reason string, body map[string]any, dryRun bool) Expect {
	return Expect{Status: status, Reason: reason, Body: body, DryRun: dryRun, Route: route}
}

func cases(cat *catalog.Catalog, m *manifest.Manifest) []Case {
	var out []Case
	for _, r := range m.Routes {
		out = append(out, routeCases(cat, m, r)...)
	}
	// A request no route matches, with a valid token: 404 after authentication.
	noRoute := manifest.Route{ID: "", Methods: []string{"GET"}}
	in := validInput(m, noRoute, nil, "")
	in["request"].(map[string]any)["path"] = testNoRoutePath
	out = append(out, Case{
		Name: "no_route", Input: in,
		Expect: deny("", 404, "no_route", map[string]any{"detail": "Not Found"}, false),
	})
	out = append(out, policyCases(cat, m)...)
	for _, c := range out {
		c.Input["identity"] = identityOf(m, c.Input)
	}
	return out
}

// identityOf is the input.identity document of a case: the identity step
// (policy/identity) applied to the case's token and headers, as Decide does.
func identityOf(m *manifest.Manifest, in map[string]any) map[string]any {
	tok, _ := in["token"].(map[string]any)
	claims, _ := tok["claims"].(map[string]any)
	kind, _ := tok["kind"].(string)
	req, _ := in["request"].(map[string]any)
	hs, _ := req["headers"].(map[string]any)
	headers := make(map[string]string, len(hs))
	for k, v := range hs {
		headers[k], _ = v.(string)
	}
	id := identity.Resolve(identity.Request{TokenValid: tok["status"] == "valid", Kind: kind, Claims: claims, Headers: headers}, m.SeatBuckets)
	return map[string]any{
		"instance_id": id.InstanceID.Value, "global_user_id": id.GlobalUserID.Value,
		"realm": id.Realm.Value, "seat_bucket": id.SeatBucket.Value,
		"subject": id.Subject, "claim_realm": id.ClaimRealm,
	}
}

// policyCases exercise the parts of the core no single route does: seat
// buckets, user tokens, upstream headers, unknown methods. They use the
// first route with fixed unit primitives.
func policyCases(cat *catalog.Catalog, m *manifest.Manifest) []Case {
	var r *manifest.Route
	for _, fixedOnly := range []bool{true, false} {
		for i := range m.Routes {
			rt := m.Routes[i]
			if r == nil && !rt.Public && !rt.NotFound && rt.HeaderUP == nil && !rt.DryRun && (!fixedOnly || FastRoute(rt)) {
				r = &m.Routes[i]
			}
		}
	}
	if r == nil {
		return nil
	}
	sc := baseScenario(cat, m, *r)
	base := sc.input(m, *r, sc.allScopes())
	checked := sc.checked(sc.allScopes())
	upEntry, classEntry := "none", m.RateLimit.DefaultClass
	if len(checked) > 0 {
		upEntry, classEntry = strings.Join(checked, ","), m.RateClassOf(checked[0])
	}
	allowed := func(entries, headers map[string]string) Expect {
		return Expect{Allow: true, Status: 200, Reason: "allowed", Body: map[string]any{}, Route: r.ID,
			UnitPrimitives: checked, RateLimitEntries: entries, Headers: headers}
	}
	var out []Case
	sb := m.SeatBuckets
	for _, tc := range []struct{ name, count, bucket string }{
		{"seat_bucket_absent", "", "any"},
		{"seat_bucket_not_a_number", "many", "any"},
		{"seat_bucket_zero", "0", "any"},
		{"seat_bucket_small", fmt.Sprint(sb.SmallMax), "small"},
		{"seat_bucket_medium", fmt.Sprint(sb.MediumMax), "medium"},
		{"seat_bucket_large", fmt.Sprint(sb.MediumMax + 1), "large"},
	} {
		in := with(base, func(_, h, _, _ map[string]any) {
			if tc.count != "" {
				h["x-gitlab-duo-seat-count"] = tc.count
			}
		})
		out = append(out, Case{Name: tc.name, Input: in, Expect: allowed(map[string]string{
			"seat_bucket": tc.bucket, "backend": m.Backend,
			"unit_primitive": upEntry, "rate_class": classEntry,
		}, nil)})
	}
	// The token's duo_seat_count decides; a header cannot raise it.
	claimIn := with(base, func(_, h, _, c map[string]any) {
		c["duo_seat_count"] = float64(sb.SmallMax)
		h["x-gitlab-duo-seat-count"] = "999999"
	})
	out = append(out, Case{Name: "seat_bucket_claim_wins_over_header", Input: claimIn, Expect: allowed(map[string]string{
		"seat_bucket": "small", "instance_id": testInstanceID, "realm": testRealm, "global_user_id": testUserID,
	}, nil)})
	out = append(out, Case{Name: "allowed_sets_identity_headers", Input: base, Expect: allowed(nil, map[string]string{
		"x-ccauthz-decision": "allow", "x-ccauthz-route": r.ID, "x-ccauthz-issuer": testIssuerName,
		"x-ccauthz-unit-primitive": strings.Join(checked, ","),
	})})
	// A user token: sub binds the user header (instance bindings of sub do
	// not apply).
	userIn := with(base, func(_, h, tok, c map[string]any) {
		tok["kind"] = "user"
		c["sub"] = testUserID
		h["x-gitlab-global-user-id"] = testUserID
	})
	out = append(out, Case{Name: "allowed_user_token", Input: userIn, Expect: allowed(
		map[string]string{"global_user_id": testUserID}, map[string]string{"x-ccauthz-subject": testUserID})})
	for _, meth := range []string{"DELETE", "PATCH", "PUT", "GET", "POST"} {
		if slices.Contains(r.Methods, meth) {
			continue
		}
		in := with(base, func(req, _, _, _ map[string]any) { req["method"] = meth })
		out = append(out, Case{Name: "no_route_for_method", Input: in,
			Expect: deny("", 404, "no_route", map[string]any{"detail": "Not Found"}, false)})
		break
	}
	return out
}

func routeCases(cat *catalog.Catalog, m *manifest.Manifest, r manifest.Route) []Case {
	var out []Case
	add := func(name string, in map[string]any, e Expect) {
		out = append(out, Case{Route: r.ID, Name: name, Input: in, Expect: e})
	}
	if r.Public {
		base := validInput(m, r, nil, "")
		noToken := with(base, func(_, h, tok, _ map[string]any) {
			delete(h, "x-gitlab-authentication-type")
			tok["status"], tok["reason"], tok["issuer"], tok["kind"] = "missing", "missing_authorization", "", ""
			delete(tok, "claims")
		})
		add("allowed_without_token", noToken, Expect{Allow: true, Status: 200, Reason: "public", Body: map[string]any{}, Route: r.ID, UnitPrimitives: []string{}})
		return out
	}

	sc := baseScenario(cat, m, r)
	all := sc.allScopes()
	base := sc.input(m, r, all)
	dry := r.DryRun
	if r.NotFound {
		add("denied_not_found", base, deny(r.ID, 404, "no_route", map[string]any{"detail": r.Detail}, dry))
	} else {
		add("allowed", base, Expect{Allow: true, Status: 200, Reason: "allowed", Body: map[string]any{}, DryRun: dry, Route: r.ID, UnitPrimitives: sc.checked(all)})
	}

	scopeDenial := func(name string, scopes []string) {
		allow, detail := sc.outcome(r, scopes)
		if allow || r.NotFound {
			return
		}
		add(name, with(base, func(_, _, _, c map[string]any) { c["scopes"] = toAny(scopes) }),
			deny(r.ID, 403, "insufficient_scope", map[string]any{"detail": detail}, dry))
	}
	scopeDenial("denied_without_unit_primitive", []string{})
	if len(all) > 1 {
		// Holding all but the last required unit primitive is not enough.
		scopeDenial("denied_without_all_unit_primitives", all[:len(all)-1])
	}
	for i, up := range sc.anyOf {
		if i == 0 {
			continue // the allowed case holds the first
		}
		scopes := append(slices.Clone(sc.allOf), up)
		for _, d := range sc.derived {
			scopes = append(scopes, d.up)
		}
		add("allowed_with_any_of_"+up, with(base, func(_, _, _, c map[string]any) { c["scopes"] = toAny(scopes) }),
			Expect{Allow: true, Status: 200, Reason: "allowed", Body: map[string]any{}, DryRun: dry, Route: r.ID, UnitPrimitives: sc.checked(scopes)})
	}

	// A token for another backend: the verifier rejects the audience, so the
	// policy sees an invalid token.
	add("denied_foreign_audience",
		with(base, func(_, _, tok, c map[string]any) {
			tok["status"], tok["reason"] = "invalid", "bad_audience"
			c["aud"] = []any{testForeignAud}
		}),
		deny(r.ID, 401, "invalid_token", map[string]any{"error": "Forbidden by auth provider"}, dry))

	add("denied_missing_authorization",
		with(base, func(_, _, tok, _ map[string]any) {
			tok["status"], tok["reason"], tok["issuer"] = "missing", "missing_authorization", ""
			delete(tok, "claims")
		}),
		deny(r.ID, 401, "missing_authorization", map[string]any{"error": "No authorization header presented"}, dry))

	add("denied_malformed_authorization",
		with(base, func(_, _, tok, _ map[string]any) {
			tok["status"], tok["reason"], tok["issuer"] = "malformed", "invalid_authorization_header", ""
			delete(tok, "claims")
		}),
		deny(r.ID, 401, "invalid_authorization_header", map[string]any{"error": "Invalid authorization header"}, dry))

	add("denied_wrong_authentication_type",
		with(base, func(_, h, _, _ map[string]any) { h["x-gitlab-authentication-type"] = "basic" }),
		deny(r.ID, 401, "invalid_authentication_type", map[string]any{"error": "Invalid authentication token type - only OIDC is supported"}, dry))

	add("denied_keys_unavailable",
		with(base, func(_, _, tok, _ map[string]any) {
			tok["status"], tok["reason"] = "unavailable", "keys_unavailable"
			delete(tok, "claims")
		}),
		deny(r.ID, 503, "keys_unavailable", map[string]any{"error": "Authentication keys unavailable"}, dry))

	// Header mismatch: the first binding that applies to an instance token
	// gets a header value that differs from its claim.
	for _, b := range m.Bindings {
		if b.TokenKind == "user" {
			continue
		}
		add("denied_header_mismatch",
			with(base, func(_, h, _, _ map[string]any) { h[b.HeaderKey()] = testMismatch }),
			deny(r.ID, 401, "header_mismatch", map[string]any{"error": fmt.Sprintf("Header mismatch '%s'", b.Header)}, dry))
		break
	}
	// A user token binds sub to the user header instead.
	for _, b := range m.Bindings {
		if b.TokenKind != "user" {
			continue
		}
		add("denied_user_token_header_mismatch",
			with(base, func(_, h, tok, c map[string]any) {
				tok["kind"] = "user"
				c["sub"] = testUserID
				h[b.HeaderKey()] = testMismatch
				// The instance bindings of sub no longer apply; keep the
				// others satisfied.
			}),
			deny(r.ID, 401, "header_mismatch", map[string]any{"error": fmt.Sprintf("Header mismatch '%s'", firstUserMismatch(m, b))}, dry))
		break
	}
	if r.NotFound {
		return out
	}

	if len(r.DisallowedIssuers) > 0 {
		iss := r.DisallowedIssuers[0]
		add("denied_disallowed_issuer",
			with(base, func(_, _, _, c map[string]any) { c["iss"] = iss }),
			deny(r.ID, 403, "issuer_not_allowed", map[string]any{"detail": sc.render(r, r.Detail, sc.firstUP())}, dry))
	}

	if r.HeaderUP != nil {
		add("denied_missing_unit_primitive_header",
			with(base, func(_, h, _, _ map[string]any) { delete(h, "x-gitlab-unit-primitive") }),
			deny(r.ID, 400, "missing_unit_primitive_header", map[string]any{"detail": "Missing x-gitlab-unit-primitive header"}, dry))
		add("denied_unknown_unit_primitive_header",
			with(base, func(_, h, _, _ map[string]any) { h["x-gitlab-unit-primitive"] = testUnknownUP }),
			deny(r.ID, 400, "unknown_unit_primitive", map[string]any{"detail": "Unknown unit primitive header " + testUnknownUP}, dry))
		if other, ok := notAllowedUP(cat, m, r); ok {
			add("denied_unit_primitive_not_allowed",
				with(base, func(_, h, _, c map[string]any) {
					h["x-gitlab-unit-primitive"] = other
					c["scopes"] = []any{other}
				}),
				deny(r.ID, 400, "unit_primitive_not_allowed", map[string]any{"detail": fmt.Sprintf("This endpoint cannot be used for %s purpose", other)}, dry))
			// The gateway checks the scope before the feature map: a unit
			// primitive outside the allow-list that the token lacks is a 403.
			add("denied_scope_before_feature_map",
				with(base, func(_, h, _, c map[string]any) {
					h["x-gitlab-unit-primitive"] = other
					c["scopes"] = toAny(r.HeaderUP.Allow[:1])
				}),
				deny(r.ID, 403, "insufficient_scope", map[string]any{"detail": renderDetail(r, other)}, dry))
		}
	}
	for i, h := range r.RefuseHeaders {
		in := with(base, func(_, hs, _, _ map[string]any) { hs[h.HeaderKey()] = h.Values[0] })
		name := fmt.Sprintf("refused_header_%d", i)
		if h.Flag != "" && !m.Flags[h.Flag] {
			add(name+"_flag_off", in, Expect{Allow: true, Status: 200, Reason: "allowed", Body: map[string]any{}, DryRun: dry, Route: r.ID})
			continue
		}
		add(name, in, deny(r.ID, 403, "header_refused", map[string]any{"detail": h.Detail}, dry))
	}
	if r.Prompt {
		out = append(out, promptCases(m, r, sc, base)...)
	}
	if r.HasBody() {
		out = append(out, bodyCases(cat, m, r, sc, base)...)
	}
	return out
}

// firstUserMismatch is the header the core reports for a user token whose
// bound header b was changed: the first user-applicable binding on that
// header, in manifest order.
func firstUserMismatch(m *manifest.Manifest, changed manifest.Binding) string {
	for _, b := range m.Bindings {
		if b.TokenKind == "instance" {
			continue
		}
		if b.HeaderKey() == changed.HeaderKey() {
			return b.Header
		}
	}
	return changed.Header
}

// notAllowedUP picks a catalog unit primitive the route's allow-list does not
// contain, preferring one served by the backend.
func notAllowedUP(cat *catalog.Catalog, m *manifest.Manifest, r manifest.Route) (string, bool) {
	for _, u := range cat.UnitPrimitivesOfBackend(m.Backend) {
		if !slices.Contains(r.HeaderUP.Allow, u.Name) {
			return u.Name, true
		}
	}
	for _, name := range cat.UnitPrimitiveNames() {
		if !slices.Contains(r.HeaderUP.Allow, name) {
			return name, true
		}
	}
	return "", false
}
