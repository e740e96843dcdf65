// Package deploy holds the artefacts that put ccauthz in front of traffic (an
// Envoy bootstrap, nginx and Caddy snippets, a systemd unit, a Dockerfile and
// Kubernetes manifests) and the checks that prove each one valid: the Envoy
// YAML is decoded into go-control-plane's Bootstrap proto and validated down
// to every typed extension config, the others are parsed and checked for the
// ports, probes and settings they must carry.
//
// It must not import the server: artefacts are validated as files, the way an
// operator would deploy them.
package deploy
