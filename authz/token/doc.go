// Package token verifies the JWTs that callers present in the Authorization
// header: it picks the issuer named by the unverified iss claim, checks the
// signature with that issuer's keys only (from package jwks), enforces the
// algorithm allow-list and the exp/nbf/iat/aud/scopes/realm rules, and caches
// verified tokens by their SHA-256 until they expire. It also holds the issuer
// configuration (decoded with positions) and token minting for self-hosted and
// development issuers. It never decides access: the policy does, from Result.
package token
