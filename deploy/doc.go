// Package deploy holds the artefacts that put ccauthz in front of traffic (an
// Envoy bootstrap for each ext_authz mode, gRPC and http_service; the nginx
// auth_request and Caddy forward_auth configs; a systemd unit; a Dockerfile;
// Kubernetes manifests and the ConfigMap with ccauthz's config; a Helm
// chart; Istio's extension provider and CUSTOM AuthorizationPolicy; an Envoy
// Gateway SecurityPolicy) and the
// checks that prove each one valid: the Envoy YAML is decoded into
// go-control-plane's Bootstrap proto and validated down to every typed
// extension config, the ConfigMap's config is decoded by ccauthz's own
// loader, the Helm chart is rendered by Helm's engine and the Istio and
// Envoy Gateway objects decoded into their projects' Go API types, the
// others are parsed and checked for the ports, probes and
// settings they must carry. The nginx and Caddy configs also run end to end
// in the real gateways in front of the real ccauthz binary.
//
// It must not import the server: artefacts are validated as files, and the
// binary is run, the way an operator would deploy them.
package deploy
