// Package api implements ccauthz's own API (proto/ccauthz/v1) over the state
// a server decides with: CatalogService over the live catalog (it follows
// reloads) and DecisionService, which explains a decision made by the
// server's own Check path (server.Server.Explain) with a trace derived from
// the policy input and the decision. Both are served on the gRPC listener and
// as JSON (protojson) on the admin listener under /api/<service>/<method>.
// Neither builds policies or changes what the server serves; Explain
// enforces, counts and logs nothing, and shows no token value.
package api
