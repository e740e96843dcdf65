// Package benchmarks holds the performance measurements of ccauthz: Go
// benchmarks of the hot paths (token verification, decisions) run by
// `make bench`, and the load harness and no-op server under load/ and noop/.
// It holds no production code.
package benchmarks
