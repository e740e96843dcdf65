package deploy

import (
	"encoding/json"
	"os"
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

// TestIstioAuthorizationPolicy checks that the policy is a CUSTOM one naming
// the ccauthz provider, selects a workload and matches every request.
func TestIstioAuthorizationPolicy(t *testing.T) {
	doc := readYAML(t, "istio/authorizationpolicy.yaml")
	if doc["apiVersion"] != "security.istio.io/v1" || doc["kind"] != "AuthorizationPolicy" {
		t.Fatalf("apiVersion %v kind %v, want security.istio.io/v1 AuthorizationPolicy", doc["apiVersion"], doc["kind"])
	}
	if ns, _ := dig(t, doc, "metadata", "namespace").(string); ns == "" {
		t.Error("no namespace: the policy would land in whatever namespace kubectl uses")
	}
	var ap securityv1beta1.AuthorizationPolicy
	protoFromYAML(t, "istio/authorizationpolicy.yaml spec", doc["spec"], &ap)
	if ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
		t.Errorf("action %v, want CUSTOM", ap.GetAction())
	}
	if ap.GetProvider().GetName() != "ccauthz" {
		t.Errorf("provider %q, want ccauthz (meshconfig.yaml's extension provider)", ap.GetProvider().GetName())
	}
	if len(ap.GetSelector().GetMatchLabels()) == 0 && len(ap.GetTargetRefs()) == 0 {
		t.Error("no selector or targetRefs: a CUSTOM policy would apply to the whole namespace")
	}
	rules := ap.GetRules()
	if len(rules) != 1 || len(rules[0].GetFrom()) != 0 || len(rules[0].GetTo()) != 0 || len(rules[0].GetWhen()) != 0 {
		t.Errorf("rules %v, want one empty rule (every request checked)", rules)
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
