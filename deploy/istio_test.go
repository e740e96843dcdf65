package deploy

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// protoFromYAML decodes YAML into a proto message through its JSON mapping,
// rejecting unknown fields: a misspelt Istio key fails here rather than
// being ignored by istiod.
func protoFromYAML(t *testing.T, what string, v any, m proto.Message) {
	t.Helper()
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := protojson.Unmarshal(j, m); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// istioProvider decodes istio/meshconfig.yaml into MeshConfig and returns
// its ccauthz extension provider.
func istioProvider(t *testing.T) *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider {
	t.Helper()
	var mc meshv1alpha1.MeshConfig
	protoFromYAML(t, "istio/meshconfig.yaml meshConfig", readYAML(t, "istio/meshconfig.yaml")["meshConfig"], &mc)
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == "ccauthz" {
			g := p.GetEnvoyExtAuthzGrpc()
			if g == nil {
				t.Fatal("extension provider ccauthz is not envoyExtAuthzGrpc")
			}
			return g
		}
	}
	t.Fatal("istio/meshconfig.yaml has no extension provider named ccauthz")
	return nil
}

// TestIstioExtensionProvider checks the fields that decide whether the mesh
// fails closed and reaches ccauthz's gRPC port: the Service and its port (the
// same as the Kubernetes Service's grpc port), a timeout, failOpen false and
// a 503 on error.
func TestIstioExtensionProvider(t *testing.T) {
	g := istioProvider(t)
	svc := k8sDocs(t, "kubernetes/ccauthz.yaml")["Service"]
	name := dig(t, svc, "metadata", "name").(string)
	if host, _, _ := strings.Cut(g.GetService(), "."); host != name || !strings.HasSuffix(g.GetService(), ".svc.cluster.local") {
		t.Errorf("service %q, want the fully qualified name of Service %q", g.GetService(), name)
	}
	var grpcPort int
	for _, p := range dig(t, svc, "spec", "ports").([]any) {
		if dig(t, p, "name") == "grpc" {
			grpcPort = dig(t, p, "port").(int)
		}
	}
	if int(g.GetPort()) != grpcPort || grpcPort == 0 {
		t.Errorf("port %d, want the Service's grpc port %d", g.GetPort(), grpcPort)
	}
	if g.GetFailOpen() {
		t.Error("failOpen must be false: an unreachable ccauthz must deny")
	}
	if g.GetStatusOnError() != "503" {
		t.Errorf("statusOnError %q, want 503", g.GetStatusOnError())
	}
	if g.GetTimeout() == nil {
		t.Fatal("no timeout: Envoy's default would apply")
	}
	if d := g.GetTimeout().AsDuration(); d <= 0 || d > time.Second {
		t.Errorf("timeout %v, want (0, 1s]", d)
	}
	if g.GetIncludeRequestBodyInCheck() != nil {
		t.Error("the provider buffers request bodies, which deploy/envoy/envoy.yaml does not")
	}
}

// TestIstioAuthorizationPolicy checks the CUSTOM policy (it names the
// ccauthz provider, selects a workload and matches every request) and the
// ALLOW policy that pins the workload to the hosts ccauthz maps to its
// backend: the same hosts as the ai_gateway backend of the shipped config.
func TestIstioAuthorizationPolicy(t *testing.T) {
	const path = "istio/authorizationpolicy.yaml"
	var custom, allow *securityv1beta1.AuthorizationPolicy
	for _, doc := range yamlDocs(t, path) {
		if doc["apiVersion"] != "security.istio.io/v1" || doc["kind"] != "AuthorizationPolicy" {
			t.Fatalf("%s: apiVersion %v kind %v, want security.istio.io/v1 AuthorizationPolicy", path, doc["apiVersion"], doc["kind"])
		}
		if ns, _ := dig(t, doc, "metadata", "namespace").(string); ns == "" {
			t.Error("no namespace: the policy would land in whatever namespace kubectl uses")
		}
		ap := &securityv1beta1.AuthorizationPolicy{}
		protoFromYAML(t, path+" spec", doc["spec"], ap)
		if len(ap.GetSelector().GetMatchLabels()) == 0 && len(ap.GetTargetRefs()) == 0 {
			t.Error("no selector or targetRefs: the policy would apply to the whole namespace")
		}
		switch ap.GetAction() {
		case securityv1beta1.AuthorizationPolicy_CUSTOM:
			custom = ap
		case securityv1beta1.AuthorizationPolicy_ALLOW:
			allow = ap
		default:
			t.Errorf("unexpected action %v", ap.GetAction())
		}
	}
	if custom == nil || allow == nil {
		t.Fatalf("%s: want a CUSTOM and an ALLOW policy", path)
	}
	if custom.GetProvider().GetName() != "ccauthz" {
		t.Errorf("provider %q, want ccauthz (meshconfig.yaml's extension provider)", custom.GetProvider().GetName())
	}
	rules := custom.GetRules()
	if len(rules) != 1 || len(rules[0].GetFrom()) != 0 || len(rules[0].GetTo()) != 0 || len(rules[0].GetWhen()) != 0 {
		t.Errorf("CUSTOM rules %v, want one empty rule (every request checked)", rules)
	}
	if !maps.Equal(custom.GetSelector().GetMatchLabels(), allow.GetSelector().GetMatchLabels()) {
		t.Error("the CUSTOM and ALLOW policies select different workloads")
	}

	var hosts []string
	for _, r := range allow.GetRules() {
		if len(r.GetFrom()) != 0 || len(r.GetWhen()) != 0 {
			t.Errorf("ALLOW rule %v: only a host condition belongs here", r)
		}
		for _, to := range r.GetTo() {
			hosts = append(hosts, to.GetOperation().GetHosts()...)
		}
	}
	var backendHosts []string
	cm := k8sDocs(t, "kubernetes/configmap.yaml")["ConfigMap"]
	var cfg struct {
		Backends []struct {
			Name  string   `yaml:"name"`
			Hosts []string `yaml:"hosts"`
		} `yaml:"backends"`
	}
	if err := yaml.Unmarshal([]byte(dig(t, cm, "data", "config.yaml").(string)), &cfg); err != nil {
		t.Fatal(err)
	}
	for _, b := range cfg.Backends {
		if b.Name == "ai_gateway" {
			backendHosts = b.Hosts
		}
	}
	if len(backendHosts) == 0 {
		t.Fatal("kubernetes/configmap.yaml: the ai_gateway backend has no hosts, so Istio checks could not select it")
	}
	var want []string
	for _, h := range backendHosts {
		want = append(want, h, h+":*")
	}
	slices.Sort(hosts)
	slices.Sort(want)
	if !slices.Equal(hosts, want) {
		t.Errorf("ALLOW hosts %v, want the ai_gateway backend's hosts with and without a port %v", hosts, want)
	}
}

// TestIstioRejectsUnknownFields proves the decoding catches a misspelt key.
func TestIstioRejectsUnknownFields(t *testing.T) {
	var mc meshv1alpha1.MeshConfig
	err := protojson.Unmarshal([]byte(`{"extensionProviders":[{"name":"x","envoyExtAuthzGrpc":{"failopen":true}}]}`), &mc)
	if err == nil || !strings.Contains(err.Error(), "failopen") {
		t.Fatalf("err %v, want an unknown-field error naming failopen", err)
	}
}
