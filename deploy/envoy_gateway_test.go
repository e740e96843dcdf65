package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	"gopkg.in/yaml.v3"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	k8sjson "sigs.k8s.io/json"
)

// strictJSON decodes YAML into a Kubernetes-style Go type through its JSON
// tags with the API server's own strict decoder: keys match case-sensitively
// and a field the type does not have is an error (encoding/json would accept
// `failopen` for `failOpen`).
func strictJSON(t *testing.T, what string, v any, out any) {
	t.Helper()
	if err := strictDecode(v, out); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func strictDecode(v any, out any) error {
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	strict, err := k8sjson.UnmarshalStrict(j, out, k8sjson.DisallowUnknownFields, k8sjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// yamlDocs returns every document of a multi-document YAML file, in order.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// TestEnvoyGatewaySecurityPolicy decodes the HTTPRoute, SecurityPolicy and
// ReferenceGrant into their Go API types and checks that they fit together:
// the policy targets the route, calls ccauthz's gRPC Service port with a
// short timeout, fails closed with 503, names a backend ccauthz's shipped
// config defines, and the grant admits exactly that reference.
func TestEnvoyGatewaySecurityPolicy(t *testing.T) {
	const path = "envoy-gateway/securitypolicy.yaml"
	var (
		route gwapiv1.HTTPRoute
		sp    egv1a1.SecurityPolicy
		grant gwapiv1.ReferenceGrant
		seen  = map[string]bool{}
	)
	for _, doc := range yamlDocs(t, path) {
		kind, _ := doc["kind"].(string)
		api, _ := doc["apiVersion"].(string)
		var out any
		switch kind + " " + api {
		case "HTTPRoute gateway.networking.k8s.io/v1":
			out = &route
		case "SecurityPolicy gateway.envoyproxy.io/v1alpha1":
			out = &sp
		case "ReferenceGrant gateway.networking.k8s.io/v1":
			out = &grant
		default:
			t.Fatalf("%s: unexpected %s %s", path, api, kind)
		}
		strictJSON(t, path+" "+kind, doc, out)
		seen[kind] = true
	}
	for _, k := range []string{"HTTPRoute", "SecurityPolicy", "ReferenceGrant"} {
		if !seen[k] {
			t.Fatalf("%s has no %s", path, k)
		}
	}

	if len(sp.Spec.TargetRefs) != 1 {
		t.Fatalf("targetRefs %v, want the one HTTPRoute", sp.Spec.TargetRefs)
	}
	ref := sp.Spec.TargetRefs[0]
	if ref.Group != gwapiv1.GroupName || ref.Kind != "HTTPRoute" || string(ref.Name) != route.Name || sp.Namespace != route.Namespace {
		t.Errorf("targetRef %s/%s %s in %s, want HTTPRoute %s in %s", ref.Group, ref.Kind, ref.Name, sp.Namespace, route.Name, route.Namespace)
	}

	ea := sp.Spec.ExtAuth
	if ea == nil || ea.GRPC == nil || ea.HTTP != nil {
		t.Fatal("extAuth must be set with grpc (and not http)")
	}
	if len(ea.GRPC.BackendRefs) != 1 {
		t.Fatalf("grpc backendRefs %v, want one", ea.GRPC.BackendRefs)
	}
	be := ea.GRPC.BackendRefs[0].BackendObjectReference
	// The walkthrough installs ccauthz with the Helm chart, whose gRPC port
	// is plaintext h2c inside the cluster (deploy/kubernetes serves it over
	// mTLS, which Envoy Gateway would need a BackendTLSPolicy for).
	// renderChart installs release "ccauthz" into namespace "ccauthz".
	svc := renderChart(t, nil).svc
	const releaseNamespace = "ccauthz"
	var grpcPort int
	for _, p := range svc.Spec.Ports {
		if p.Name == "grpc" {
			grpcPort = int(p.Port)
			if p.AppProtocol == nil || *p.AppProtocol != "kubernetes.io/h2c" {
				t.Error("the chart Service's grpc port lacks appProtocol kubernetes.io/h2c: Envoy Gateway would speak HTTP/1.1 to it")
			}
		}
	}
	if string(be.Name) != svc.Name || be.Namespace == nil || string(*be.Namespace) != releaseNamespace || be.Port == nil || int(*be.Port) != grpcPort || (be.Kind != nil && *be.Kind != "Service") {
		t.Errorf("backendRef %s port %v, want the chart's Service %s/%s port %d", be.Name, be.Port, releaseNamespace, svc.Name, grpcPort)
	}
	if ea.FailOpen == nil || *ea.FailOpen {
		t.Error("failOpen must be explicitly false")
	}
	if ea.StatusOnError == nil || *ea.StatusOnError != 503 {
		t.Errorf("statusOnError %v, want 503 (the default 403 reads as a denial)", ea.StatusOnError)
	}
	if ea.Timeout == nil {
		t.Fatal("no timeout: Envoy Gateway's default is 10 s")
	}
	if d, err := time.ParseDuration(string(*ea.Timeout)); err != nil || d <= 0 || d > time.Second {
		t.Errorf("timeout %q (%v), want (0, 1s]", *ea.Timeout, err)
	}

	// The backend named in context_extensions must exist in the shipped config.
	var backend string
	for _, ce := range ea.ContextExtensions {
		if ce.Name == "backend" && ce.Type == egv1a1.ContextExtensionValueTypeValue && ce.Value != nil {
			backend = *ce.Value
		}
	}
	cm := k8sDocs(t, "kubernetes/configmap.yaml")["ConfigMap"]
	cfg := dig(t, cm, "data", "config.yaml").(string)
	if backend == "" || !strings.Contains(cfg, "name: "+backend+"\n") {
		t.Errorf("context extension backend %q is not a backend of kubernetes/configmap.yaml", backend)
	}

	// The ReferenceGrant admits the SecurityPolicy's cross-namespace reference.
	if be.Namespace == nil || grant.Namespace != string(*be.Namespace) {
		t.Errorf("ReferenceGrant in %s, backendRef namespace %v", grant.Namespace, be.Namespace)
	}
	okFrom := false
	for _, f := range grant.Spec.From {
		okFrom = okFrom || (f.Group == egv1a1.GroupName && f.Kind == egv1a1.KindSecurityPolicy && string(f.Namespace) == sp.Namespace)
	}
	okTo := false
	for _, to := range grant.Spec.To {
		okTo = okTo || (to.Group == "" && to.Kind == "Service" && to.Name != nil && *to.Name == be.Name)
	}
	if !okFrom || !okTo {
		t.Errorf("ReferenceGrant from %v to %v does not admit SecurityPolicy %s/%s → Service %s", grant.Spec.From, grant.Spec.To, sp.Namespace, sp.Name, be.Name)
	}
}

// TestStrictJSONRejectsUnknownFields proves the decoding catches a misspelt key.
func TestStrictJSONRejectsUnknownFields(t *testing.T) {
	var sp egv1a1.SecurityPolicy
	err := strictDecode(map[string]any{"spec": map[string]any{"extAuth": map[string]any{"failopen": true}}}, &sp)
	if err == nil || !strings.Contains(err.Error(), "failopen") {
		t.Fatalf("err %v, want an unknown-field error naming failopen", err)
	}
}
