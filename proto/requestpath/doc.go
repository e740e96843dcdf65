// Package requestpath defines ccauthz's canonical request path, once, for
// every protocol mapping: the path the policy judges is the path a
// normalising proxy (Envoy with normalize_path, nginx) forwards to the
// backend. Unambiguous forms are normalised (unreserved characters decoded,
// escape hex upper-cased, dot segments removed per RFC 3986 §5.2.4, duplicate
// slashes merged); anything proxies or backends could resolve differently
// (backslashes, encoded slashes unless configured, NUL and control
// characters, fragments, bad escapes, overlong or invalid UTF-8, over-long
// paths) is rejected with an *Error naming the problem. It owns only the
// path and the query's validity: it does not split routes, strip prefixes
// or know any protocol.
package requestpath
