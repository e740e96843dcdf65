# workerd (Cloudflare's Workers runtime) serving worker.js on loopback, with
# ccauthz and the origin as external services. deploy/cloudflare_e2e_test.go
# replaces the three addresses with its own; run by hand with
# `workerd serve deploy/cloudflare/workerd.capnp`.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "edge", worker = .edge),
    (name = "ccauthz", external = (address = "127.0.0.1:9192", http = ())),
    (name = "origin", external = (address = "127.0.0.1:5052", http = ())),
  ],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "edge")],
);

const edge :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  compatibilityDate = "2026-11-01",
  bindings = [
    (name = "CCAUTHZ", service = "ccauthz"),
    (name = "UPSTREAM", service = "origin"),
    (name = "CCAUTHZ_BACKEND", text = "ai_gateway"),
    (name = "CCAUTHZ_TIMEOUT_MS", text = "250"),
  ],
);
