# METADATA
# title: ccauthz core policy
# description: |
#   The hand-written core of every ccauthz policy. It reads the request
#   (input.request), the token verification outcome (input.token) and the data
#   generated from the catalog and the service manifest
#   (data.ccauthz.generated), and produces the one decision object
#   data.ccauthz.main.decision. Precedence and messages follow the GitLab AI
#   gateway. Every request header it reads is named by a constant key, so the
#   decision cache in Go can key on exactly those headers.
package ccauthz.main

import data.ccauthz.generated as gen

# Upstream headers ccauthz sets on allow; a client cannot forge them because
# every one the decision does not set is listed in headers_to_remove.
ccauthz_headers := [
	"x-ccauthz-decision",
	"x-ccauthz-issuer",
	"x-ccauthz-realm",
	"x-ccauthz-route",
	"x-ccauthz-subject",
	"x-ccauthz-unit-primitive",
]

www_invalid_token := {"www-authenticate": `Bearer error="invalid_token"`}

www_invalid_request := {"www-authenticate": `Bearer error="invalid_request"`}

# Request headers, each read by a constant key (absent reads as "").

default auth_type := ""

auth_type := input.request.headers["x-gitlab-authentication-type"]

default up_header := ""

up_header := input.request.headers["x-gitlab-unit-primitive"]

# The verified claims; {} when the token is not valid.
claims := input.token.claims if {
	input.token.status == "valid"
	is_object(input.token.claims)
} else := {}

token_kind := "user" if input.token.kind == "user"

else := "instance"

# The token's scopes, aliases mapped to their canonical unit primitive.
scopes := {object.get(gen.canonical_scopes, s, s) | some s in claims.scopes}

# Routing: an exact route wins; otherwise the most specific pattern route
# (the manifest loader rejects ambiguous overlaps). The exact routes are
# indexed on method and path; the pattern routes are one else chain, most
# specific first, so no route list is iterated or collected.

path_parts := split(trim_prefix(input.request.path, "/"), "/")

matched := [id, ""] if {
	id := gen.exact_route
} else := gen.pattern_route

matched_route_id := matched[0]

# The path the route's final "*" matched (a prompt id on prompt routes).
wildcard_rest := matched[1]

default route_id := ""

route_id := matched_route_id

route := gen.routes[matched_route_id]

# Replacements for the route's {param} placeholders in its detail.
param_replacements := {sprintf("{%s}", [name]): path_parts[i] |
	some name, i in object.get(gen.route_params, matched_route_id, {})
}

default dry_run := false

dry_run := route.dry_run

# Unit primitives. required: the route's all-of list (or the header's unit
# primitive on proxy routes); any_of: at least one; derived: from the prompt
# registry or the request body, each with the detail that names it.

header_up := gen.known_unit_primitives[up_header]

required_unit_primitives := route.unit_primitives if not route.header_mode

else := [header_up]

required_set := route.unit_primitive_set if not route.header_mode

else := {header_up}

missing_set := required_set - scopes

any_of_held := [up | some up in route.any_of; up in scopes]

any_of_missing if {
	count(route.any_of) > 0
	count(any_of_held) == 0
}

prompt_id := wildcard_rest if route.prompt

# [unit primitive, detail template] pairs, in order.
derived := [[up, route.detail] | some up in gen.prompts[prompt_id]] if {
	route.prompt
} else := gen.body_eval[matched_route_id].ups if {
	route.body
} else := []

derived_missing := [p | some p in derived; not p[0] in scopes]

default checked_unit_primitives := []

checked_unit_primitives := dedup(array.concat(array.concat(required_unit_primitives, any_of_held), [p[0] | some p in derived])) if {
	not route.public
	not route.not_found
}

dedup(a) := [x | some i, x in a; not x in array.slice(a, 0, i)]

# The detail of a 403 and the unit primitive it names.
detail_up := up if {
	some up in required_unit_primitives
	up in missing_set
	not up_missing_before(up)
} else := up if {
	any_of_missing
	up := concat(" or ", route.any_of)
} else := up if {
	up := derived_missing[0][0]
} else := up if {
	up := required_unit_primitives[0]
} else := up if {
	count(route.any_of) > 0
	up := concat(" or ", route.any_of)
} else := up if {
	up := derived[0][0]
} else := up_header

detail_template := derived_missing[0][1] if {
	count(missing_set) == 0
	not any_of_missing
	count(derived_missing) > 0
} else := route.detail

detail := strings.replace_n(
	object.union(
		object.union(param_replacements, {"{prompt_id}": wildcard_rest}),
		{"{unit_primitive}": detail_up},
	),
	detail_template,
)

# up_missing_before(up) holds when a required unit primitive listed before up
# is missing too (so detail_up names the first missing one).
up_missing_before(up) if {
	some i, u in required_unit_primitives
	u == up
	some j, v in required_unit_primitives
	j < i
	v in missing_set
}

# The request body, for routes with body rules.

default body_status := "absent"

body_status := input.request.body_status

body_status_error := {"status": 400, "reason": "body_missing", "detail": "Request body required"} if {
	body_status in {"", "absent"}
} else := {"status": 413, "reason": "body_too_large", "detail": "Request body too large"} if {
	body_status == "too_large"
} else := {"status": 400, "reason": "body_invalid", "detail": "Request body truncated"} if {
	body_status == "truncated"
} else := {"status": 400, "reason": "body_invalid", "detail": "Request body is not valid JSON"} if {
	body_status != "ok"
}

body_error := body_status_error if {
	route.body
} else := gen.body_eval[matched_route_id].error if {
	route.body
}

# Claim ↔ header bindings, only for non-empty claims: the generated module
# checks them in manifest order (gen.header_mismatch names the first header
# that differs from its claim).

issuer_disallowed if input.token.issuer in route.disallowed_issuers

issuer_disallowed if claims.iss in route.disallowed_issuers

extra_denied if {
	some _ in data.ccauthz.extra.deny
}

extra_denials := {sprintf("%v", [m]) | some m in data.ccauthz.extra.deny}

# The outcome, in the AI gateway's order.

deny(status, reason, body, response_headers) := {
	"allow": false,
	"status": status,
	"reason": reason,
	"body": body,
	"response_headers": response_headers,
}

outcome := {"allow": true, "status": 200, "reason": "public", "body": {}, "response_headers": {}} if {
	route.public
} else := o if {
	input.token.status == "missing"
	o := deny(401, "missing_authorization", {"error": "No authorization header presented"}, www_invalid_token)
} else := o if {
	input.token.status == "malformed"
	o := deny(401, "invalid_authorization_header", {"error": "Invalid authorization header"}, www_invalid_token)
} else := o if {
	auth_type != "oidc"
	o := deny(
		401, "invalid_authentication_type",
		{"error": "Invalid authentication token type - only OIDC is supported"}, www_invalid_token,
	)
} else := o if {
	input.token.status == "unavailable"
	o := deny(503, "keys_unavailable", {"error": "Authentication keys unavailable"}, {})
} else := o if {
	input.token.status != "valid"
	o := deny(401, "invalid_token", {"error": "Forbidden by auth provider"}, www_invalid_token)
} else := o if {
	msg := sprintf("Header mismatch '%s'", [gen.header_mismatch])
	o := deny(401, "header_mismatch", {"error": msg}, www_invalid_token)
} else := o if {
	not route
	o := deny(404, "no_route", {"detail": "Not Found"}, {})
} else := o if {
	route.not_found
	o := deny(404, "no_route", {"detail": route.detail}, {})
} else := o if {
	route.prompt
	not gen.prompts[prompt_id]
	o := deny(404, "no_route", {"detail": "Not found"}, {})
} else := o if {
	e := body_error
	o := deny(e.status, e.reason, {"detail": e.detail}, www_invalid_request)
} else := o if {
	issuer_disallowed
	o := deny(403, "issuer_not_allowed", {"detail": detail}, insufficient_scope)
} else := o if {
	route.header_mode
	up_header == ""
	o := deny(400, "missing_unit_primitive_header", {"detail": "Missing x-gitlab-unit-primitive header"}, www_invalid_request)
} else := o if {
	route.header_mode
	not header_up
	msg := sprintf("Unknown unit primitive header %s", [up_header])
	o := deny(400, "unknown_unit_primitive", {"detail": msg}, www_invalid_request)
} else := o if {
	# The AI gateway checks the scope before the feature-category map.
	count(missing_set) > 0
	o := deny(403, "insufficient_scope", {"detail": detail}, insufficient_scope)
} else := o if {
	route.header_mode
	not header_up in route.allow
	msg := sprintf("This endpoint cannot be used for %s purpose", [up_header])
	o := deny(400, "unit_primitive_not_allowed", {"detail": msg}, www_invalid_request)
} else := o if {
	any_of_missing
	o := deny(403, "insufficient_scope", {"detail": detail}, insufficient_scope)
} else := o if {
	msg := gen.refused[matched_route_id]
	o := deny(403, "header_refused", {"detail": msg}, {})
} else := o if {
	count(derived_missing) > 0
	o := deny(403, "insufficient_scope", {"detail": detail}, insufficient_scope)
} else := o if {
	count(extra_denials) > 0
	o := deny(403, "extra_policy_deny", {"detail": sort(extra_denials)[0]}, {})
} else := {"allow": true, "status": 200, "reason": "allowed", "body": {}, "response_headers": {}}

insufficient_scope := {"www-authenticate": sprintf(
	`Bearer error="insufficient_scope", scope="%s"`,
	[scope_hint],
)}

# The scope the 403 names: the missing all-of unit primitives, else the
# any-of alternatives, else the missing derived ones.
scope_hint := concat(" ", [up | some up in required_unit_primitives; up in missing_set]) if {
	count(missing_set) > 0
} else := concat(" ", route.any_of) if {
	any_of_missing
} else := concat(" ", dedup([p[0] | some p in derived_missing])) if {
	count(derived_missing) > 0
} else := s if {
	s := concat(" ", array.concat(required_unit_primitives, route.any_of))
} else := up_header

header_rate_class := c if {
	c := gen.rate_classes[header_up]
} else := gen.default_rate_class

# Upstream headers.

# The subject and the claim realm (the sub and gitlab_realm claims of a valid
# token when strings, else "") are the identity step's, like the rate-limit
# identity entries below: the policy only copies them, so the decision cache
# does not key on sub or gitlab_realm and Go fills them in after the cache.
subject := object.get(identity, "subject", "")

# On allow every ccauthz header is set (empty when unknown), so none needs
# removing; otherwise the ones not set are removed.
upstream_headers := {
	"x-ccauthz-decision": "allow",
	"x-ccauthz-route": route_id,
	"x-ccauthz-unit-primitive": concat(",", checked_unit_primitives),
	"x-ccauthz-issuer": input.token.issuer,
	"x-ccauthz-subject": subject,
	"x-ccauthz-realm": claim_realm,
} if {
	outcome.reason == "allowed"
} else := {"x-ccauthz-decision": "public", "x-ccauthz-route": route_id} if {
	outcome.reason == "public"
} else := {"x-ccauthz-decision": "dry-run-deny", "x-ccauthz-route": route_id} if {
	dry_run
} else := {}

headers_to_remove := [] if {
	outcome.reason == "allowed"
} else := [
	"x-ccauthz-issuer",
	"x-ccauthz-realm",
	"x-ccauthz-subject",
	"x-ccauthz-unit-primitive",
] if {
	count(upstream_headers) > 0
} else := ccauthz_headers

# Rate-limit descriptor entries: string leaves, always present.

claim_realm := object.get(identity, "claim_realm", "")

# Identity entries (instance_id, global_user_id, realm, seat_bucket) are the
# identity step's, computed in Go from the verified claims (a header only when
# the token has no such claim; docs/policy.md "Identity") and given as
# input.identity. The policy only copies them: the decision cache does not key
# on them and Go fills them in after the cache.
default identity := {
	"instance_id": "unknown", "global_user_id": "unknown", "realm": "unknown", "seat_bucket": "any",
	"subject": "", "claim_realm": "",
}

identity := input.identity

# Routes with fixed unit primitives carry their rate entries as data; the
# others (header, any-of, prompt, body, authenticate-only) take the unit
# primitives checked for this request.
rate_unit_primitive := route.rate_unit_primitive if {
	route.rate_unit_primitive != ""
} else := u if {
	route.header_mode
	u := header_up
} else := concat(",", checked_unit_primitives) if {
	count(checked_unit_primitives) > 0
} else := "none"

rate_class := route.rate_class if {
	route.rate_class != ""
} else := c if {
	route.header_mode
	c := header_rate_class
} else := c if {
	c := gen.rate_classes[checked_unit_primitives[0]]
} else := gen.default_rate_class if {
	not route.public
	not route.not_found
	route
} else := "none"

rate_entries := {
	"backend": gen.backend,
	"unit_primitive": rate_unit_primitive,
	"instance_id": identity.instance_id,
	"global_user_id": identity.global_user_id,
	"realm": identity.realm,
	"seat_bucket": identity.seat_bucket,
	"rate_class": rate_class,
}

rate_limit := {"entries": rate_entries, "limit": gen.rate_limits[rate_class]} if {
	gen.rate_limits[rate_class]
} else := {"entries": rate_entries}

# The decision: one object with the fixed keys of policy.Decision. The common
# case, an allowed request on a route the generator marks fast (fixed unit
# primitives, a unit-primitive header, or body rules), is computed in one rule
# body (fast_allow, several times cheaper to evaluate); everything else, and
# any request it does not cover, goes through the full chain. Both must
# agree: every generated test compares decision with full_decision, and a Go
# test checks fast_allow fires for every fast route.
decision := d if {
	d := fast_allow
} else := full_decision

# full_decision is the reference: every check in order, every key computed.
full_decision := {
	"allow": outcome.allow,
	"status": outcome.status,
	"body": outcome.body,
	"reason": outcome.reason,
	"route": route_id,
	"unit_primitives": checked_unit_primitives,
	"headers": upstream_headers,
	"headers_to_remove": headers_to_remove,
	"response_headers": outcome.response_headers,
	"rate_limit": rate_limit,
	"dry_run": dry_run,
}

# fast_allow holds exactly when full_decision would allow the request on a
# fast route, and then equals it. It checks in one body what the full chain
# checks for such a request: a valid token, OIDC, no claim/header mismatch,
# the issuer, every unit primitive held (by its canonical name: a scope that
# is an alias falls back to the full chain) and no extra denial. What a route
# checks is generated: gen.fast_exact for a fixed route, gen.fast_ups[route
# id] for one whose unit primitives come from the x-gitlab-unit-primitive
# header or from the route's body rules.
fast_allow := d if {
	[id, ups, rate_up, class, dry] := fast_verdict
	d := {
		"allow": true,
		"status": 200,
		"body": {},
		"reason": "allowed",
		"route": id,
		"unit_primitives": ups,
		"headers": {
			"x-ccauthz-decision": "allow",
			"x-ccauthz-route": id,
			"x-ccauthz-unit-primitive": rate_up,
			"x-ccauthz-issuer": input.token.issuer,
			"x-ccauthz-subject": subject,
			"x-ccauthz-realm": claim_realm,
		},
		"headers_to_remove": [],
		"response_headers": {},
		"rate_limit": object.union(
			{"entries": {
				"backend": gen.backend,
				"unit_primitive": rate_up,
				"instance_id": identity.instance_id,
				"global_user_id": identity.global_user_id,
				"realm": identity.realm,
				"seat_bucket": identity.seat_bucket,
				"rate_class": class,
			}},
			gen.rate_limit_of[class],
		),
		"dry_run": dry,
	}
}

# fast_verdict is the part of fast_allow that depends on the request:
# [route id, unit primitives, rate-limit unit primitive, rate class, dry run],
# defined whenever fast_allow is (and only then: fast_allow also looks the
# class up in gen.rate_limit_of, which lists every class). Everything else in
# fast_allow is a constant of the route and class or a copy of the input.
fast_verdict := [id, ups, rate_up, class, dry] if {
	[id, ups, rate_up, class, disallowed, dry] := fast_target
	input.token.status == "valid"
	input.request.headers["x-gitlab-authentication-type"] == "oidc"
	not gen.header_mismatch
	not input.token.issuer in disallowed
	not input.token.claims.iss in disallowed
	not extra_denied
}

# fast_target is the fast route a request matched, with the route's
# constants, when the token's scopes name every unit primitive it checks:
# gen.fast_exact for a fixed route (one lookup indexed on method and path),
# else gen.fast_ups of the matched header or body route.
fast_target := t if {
	t := gen.fast_exact
} else := gen.fast_ups[fast_route]

# verdict is what ccauthz evaluates per request: fast_verdict (an array)
# when it is defined, which Go expands to the object fast_allow would be
# (policy.fastDecision), else full_decision. It is decision with the
# constant part of a fast allow left to Go.
verdict := v if {
	v := fast_verdict
} else := full_decision

# fast_route is the matched route's id (matched_route_id, one rule less).
fast_route := id if {
	id := gen.exact_route
} else := m[0] if {
	m := gen.pattern_route
}
