// Package certs owns the TLS material of ccauthz's listeners: it loads a
// listener's certificate and key (and, for mTLS, the client CA bundle),
// checks that they belong together, and serves whatever is current to each
// new handshake from an atomic pointer, so a reload (a rotated Secret, a
// renewed certificate) reaches new connections without touching the ones
// already open. It never watches files itself (the server's poller calls
// Reload) and knows nothing of gRPC or HTTP.
package certs
