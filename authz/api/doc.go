// Package api implements ccauthz's own API (proto/ccauthz/v1) over the state
// a server decides with: CatalogService over the live catalog (it follows
// reloads), served on the gRPC listener and as JSON (protojson) on the admin
// listener under /api/<service>/<method>. It only reads: it must not build
// policies, verify tokens or change what the server serves.
package api
