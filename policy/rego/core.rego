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

# Request headers, each read by a constant key.

default auth_type := ""

auth_type := input.request.headers["x-gitlab-authentication-type"]

default up_header := ""

up_header := input.request.headers["x-gitlab-unit-primitive"]

default seat_count_header := ""

seat_count_header := input.request.headers["x-gitlab-duo-seat-count"]

default instance_id_header := ""

instance_id_header := input.request.headers["x-gitlab-instance-id"]

default global_user_id_header := ""

global_user_id_header := input.request.headers["x-gitlab-global-user-id"]

default realm_header := ""

realm_header := input.request.headers["x-gitlab-realm"]

# The verified claims; {} when the token is not valid.
claims := input.token.claims if {
	input.token.status == "valid"
	is_object(input.token.claims)
} else := {}

token_kind := "user" if input.token.kind == "user"

else := "instance"

scopes := {s | some s in claims.scopes; is_string(s)}

# Routing: an exact route wins; otherwise the most specific pattern route
# (the manifest loader rejects ambiguous overlaps).

path_parts := split(trim_prefix(input.request.path, "/"), "/")

pattern_matches contains r if {
	some r in gen.pattern_routes
	input.request.method in r.methods
	pattern_match(r)
}

pattern_match(r) if {
	not r.wildcard
	count(path_parts) == count(r.segments)
	every i, s in r.segments {
		segment_match(s, path_parts[i])
	}
}

pattern_match(r) if {
	r.wildcard
	count(path_parts) > count(r.segments)
	every i, s in r.segments {
		segment_match(s, path_parts[i])
	}
	concat("/", array.slice(path_parts, count(r.segments), count(path_parts))) != ""
}

# A literal segment matches itself; a parameter ("") any non-empty segment.
segment_match(s, p) if {
	s == ""
	p != ""
}

segment_match(s, p) if {
	s != ""
	s == p
}

matched_route_id := id if {
	id := gen.exact_routes[concat(" ", [input.request.method, input.request.path])]
} else := id if {
	best := max({r.rank | some r in pattern_matches})
	some r in pattern_matches
	r.rank == best
	id := r.id
}

default route_id := ""

route_id := matched_route_id

route := gen.routes[matched_route_id]

# Replacements for the route's {param} placeholders in its detail.
param_replacements := {sprintf("{%s}", [name]): path_parts[i] |
	some name, i in object.get(gen.route_params, matched_route_id, {})
}

default dry_run := false

dry_run := route.dry_run

# Unit primitives.

header_mode if route.header_mode

header_up := gen.known_unit_primitives[up_header]

required_unit_primitives := route.unit_primitives if not header_mode

else := [header_up]

default checked_unit_primitives := []

checked_unit_primitives := required_unit_primitives if not route.public

has_scope(up) if {
	some name in gen.scope_names[up]
	name in scopes
}

missing_unit_primitives := [up | some up in required_unit_primitives; not has_scope(up)]

detail_up := up if {
	up := missing_unit_primitives[0]
} else := up if {
	up := required_unit_primitives[0]
} else := up_header

detail := strings.replace_n(
	object.union(param_replacements, {"{unit_primitive}": detail_up}),
	route.detail,
)

# Claim ↔ header bindings, only for non-empty claims.

binding_applies(b) if b.token_kind == ""

binding_applies(b) if b.token_kind == token_kind

header_mismatches contains [i, b.header] if {
	some i, b in gen.bindings
	binding_applies(b)
	c := claims[b.claim]
	c != null
	c != ""
	gen.bound_headers[b.key] != c
}

first_header_mismatch := min(header_mismatches)[1]

issuer_disallowed if input.token.issuer in route.disallowed_issuers

issuer_disallowed if claims.iss in route.disallowed_issuers

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
	msg := sprintf("Header mismatch '%s'", [first_header_mismatch])
	o := deny(401, "header_mismatch", {"error": msg}, www_invalid_token)
} else := o if {
	not route
	o := deny(404, "no_route", {"detail": "Not Found"}, {})
} else := o if {
	issuer_disallowed
	o := deny(403, "issuer_not_allowed", {"detail": detail}, insufficient_scope)
} else := o if {
	header_mode
	up_header == ""
	o := deny(400, "missing_unit_primitive_header", {"detail": "Missing x-gitlab-unit-primitive header"}, www_invalid_request)
} else := o if {
	header_mode
	not header_up
	msg := sprintf("Unknown unit primitive header %s", [up_header])
	o := deny(400, "unknown_unit_primitive", {"detail": msg}, www_invalid_request)
} else := o if {
	header_mode
	not header_up in route.allow
	msg := sprintf("This endpoint cannot be used for %s purpose", [up_header])
	o := deny(400, "unit_primitive_not_allowed", {"detail": msg}, www_invalid_request)
} else := o if {
	count(missing_unit_primitives) > 0
	o := deny(403, "insufficient_scope", {"detail": detail}, insufficient_scope)
} else := o if {
	count(extra_denials) > 0
	o := deny(403, "extra_policy_deny", {"detail": sort(extra_denials)[0]}, {})
} else := {"allow": true, "status": 200, "reason": "allowed", "body": {}, "response_headers": {}}

insufficient_scope := {"www-authenticate": sprintf(
	`Bearer error="insufficient_scope", scope="%s"`,
	[scope_hint],
)}

scope_hint := s if {
	s := concat(" ", required_unit_primitives)
} else := up_header

# Upstream headers.

subject := s if {
	s := claims.sub
	is_string(s)
} else := ""

identity_headers := {
	"x-ccauthz-decision": "allow",
	"x-ccauthz-route": route_id,
	"x-ccauthz-unit-primitive": concat(",", checked_unit_primitives),
	"x-ccauthz-issuer": input.token.issuer,
	"x-ccauthz-subject": subject,
	"x-ccauthz-realm": object.get(claims, "gitlab_realm", ""),
}

raw_upstream_headers := {"x-ccauthz-decision": "public", "x-ccauthz-route": route_id} if {
	outcome.reason == "public"
} else := identity_headers if {
	outcome.allow
} else := {"x-ccauthz-decision": "dry-run-deny", "x-ccauthz-route": route_id} if {
	dry_run
} else := {}

upstream_headers := {k: v | some k, v in raw_upstream_headers; is_string(v); v != ""}

headers_to_remove := [h | some h in ccauthz_headers; not upstream_headers[h]]

# Rate-limit descriptor entries: string leaves, always present.

first_nonempty(xs, fallback) := xs[i] if {
	i := min({j | some j, x in xs; is_string(x); x != ""})
} else := fallback

user_sub := subject if token_kind == "user"

else := ""

instance_sub := subject if token_kind == "instance"

else := ""

seat_bucket := "any" if {
	not regex.match(`^[0-9]{1,9}$`, seat_count_header)
} else := "any" if {
	to_number(seat_count_header) == 0
} else := "small" if {
	to_number(seat_count_header) <= gen.seat_buckets.small_max
} else := "medium" if {
	to_number(seat_count_header) <= gen.seat_buckets.medium_max
} else := "large"

rate_class := object.get(gen.rate_classes, checked_unit_primitives[0], gen.default_rate_class) if {
	count(checked_unit_primitives) > 0
} else := "none"

rate_entries := {
	"backend": gen.backend,
	"unit_primitive": first_nonempty([concat(",", checked_unit_primitives)], "none"),
	"instance_id": first_nonempty(
		[object.get(claims, "gitlab_instance_id", ""), instance_sub, instance_id_header],
		"unknown",
	),
	"global_user_id": first_nonempty([user_sub, global_user_id_header], "unknown"),
	"realm": first_nonempty([object.get(claims, "gitlab_realm", ""), realm_header], "unknown"),
	"seat_bucket": seat_bucket,
	"rate_class": rate_class,
}

rate_limit := {"entries": rate_entries, "limit": gen.rate_limits[rate_class]} if {
	gen.rate_limits[rate_class]
} else := {"entries": rate_entries}

# The decision: one object with the fixed keys of policy.Decision.
decision := {
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
