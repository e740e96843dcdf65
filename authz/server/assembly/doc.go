// Package assembly builds a running ext_authz server from a config.Config
// with the real packages: the token verifier (and its key caches), the
// catalog and manifests loaded from disk or the embedded examples, a compiled
// policy per backend, metrics that read the verifier's statistics, and the
// snapshot builder used at start and on every reload. The server package
// itself only knows its small interfaces; this is the one place they meet
// the implementations.
package assembly
