// Package jwks owns the signing keys of each configured token issuer: it reads
// and validates JWKS documents, fetches them from an OIDC discovery URL, a JWKS
// URL or a local file, and keeps one immutable key snapshot per issuer behind an
// atomic pointer, refreshed before it expires, served stale while the issuer is
// down, and refetched (single-flight, rate-limited) when a token names a kid it
// does not know. It also holds the key tooling of self-hosted issuers (PEM
// reading, RFC 7638 thumbprints, public JWKS output). It never parses tokens:
// that is package token's job.
package jwks
