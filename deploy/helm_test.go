package deploy

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ccauthz/ccauthz/authz/config"
)

const chartDir = "helm/ccauthz"

// chartObjects is one rendering of the chart, every object decoded into its
// Kubernetes Go type.
type chartObjects struct {
	deploy  *appsv1.Deployment
	svc     *corev1.Service
	cm      *corev1.ConfigMap
	secret  *corev1.Secret
	pdb     *policyv1.PodDisruptionBudget
	netpol  *networkingv1.NetworkPolicy
	monitor *monitoringv1.ServiceMonitor
}

// renderChart renders the chart with Helm's own engine, as `helm template
// ccauthz deploy/helm/ccauthz -n ccauthz` would with the given values, and
// decodes every object strictly (an unknown or misspelt field fails).
func renderChart(t *testing.T, values map[string]any) chartObjects {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Validate(); err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "ccauthz", Namespace: "ccauthz", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	var out chartObjects
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for i, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(files[name], -1) {
			var doc map[string]any
			if err := yaml.Unmarshal([]byte(part), &doc); err != nil {
				t.Fatalf("%s document %d: %v\n%s", name, i, err, part)
			}
			if doc == nil {
				continue
			}
			what := name + " " + doc["apiVersion"].(string) + " " + doc["kind"].(string)
			var obj any
			switch doc["apiVersion"].(string) + " " + doc["kind"].(string) {
			case "apps/v1 Deployment":
				out.deploy = &appsv1.Deployment{}
				obj = out.deploy
			case "v1 Service":
				out.svc = &corev1.Service{}
				obj = out.svc
			case "v1 ConfigMap":
				out.cm = &corev1.ConfigMap{}
				obj = out.cm
			case "v1 Secret":
				out.secret = &corev1.Secret{}
				obj = out.secret
			case "policy/v1 PodDisruptionBudget":
				out.pdb = &policyv1.PodDisruptionBudget{}
				obj = out.pdb
			case "networking.k8s.io/v1 NetworkPolicy":
				out.netpol = &networkingv1.NetworkPolicy{}
				obj = out.netpol
			case "monitoring.coreos.com/v1 ServiceMonitor":
				out.monitor = &monitoringv1.ServiceMonitor{}
				obj = out.monitor
			default:
				t.Fatalf("%s: an object the test does not know", what)
			}
			strictJSON(t, what, doc, obj)
		}
	}
	if out.deploy == nil || out.svc == nil || out.cm == nil {
		t.Fatalf("rendered %v: want at least a Deployment, a Service and a ConfigMap", names)
	}
	return out
}

// loadChartConfig lays out the ConfigMap (and the Secret, if any) the way
// the Deployment mounts them, under a temporary root, and loads config.yaml
// with ccauthz's own loader.
func loadChartConfig(t *testing.T, o chartObjects) (*config.Config, string) {
	t.Helper()
	c := o.deploy.Spec.Template.Spec.Containers[0]
	root := t.TempDir()
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for _, v := range o.deploy.Spec.Template.Spec.Volumes {
		var data map[string][]byte
		switch {
		case v.ConfigMap != nil && v.ConfigMap.Name == o.cm.Name:
			data = map[string][]byte{}
			for k, s := range o.cm.Data {
				data[k] = []byte(s)
			}
		case v.Secret != nil && o.secret != nil && v.Secret.SecretName == o.secret.Name:
			data = o.secret.Data
		default:
			continue
		}
		dir := filepath.Join(root, mounts[v.Name])
		if mounts[v.Name] == "" {
			t.Fatalf("volume %s is not mounted", v.Name)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for k, b := range data {
			if err := os.WriteFile(filepath.Join(dir, k), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("container args %v lack --config", c.Args)
	}
	cfg, err := config.Load(filepath.Join(root, c.Args[i+1]))
	if err != nil {
		t.Fatalf("the chart's config.yaml:\n%v\n%s", err, o.cm.Data["config.yaml"])
	}
	return cfg, root
}

// TestHelmChartDefaults renders the chart with its default values and checks
// what an operator relies on: the config loads, listeners, probes and ports
// agree, the pod is hardened, GOMEMLIMIT sits below the memory limit, and
// every selector selects the pods.
func TestHelmChartDefaults(t *testing.T) {
	o := renderChart(t, nil)
	if o.secret != nil || o.monitor != nil {
		t.Error("defaults render a Secret or ServiceMonitor; both are opt-in")
	}
	if o.pdb == nil || o.netpol == nil {
		t.Fatal("defaults must render the PodDisruptionBudget and the NetworkPolicy")
	}
	pod := o.deploy.Spec.Template.Spec
	c := pod.Containers[0]
	cfg, _ := loadChartConfig(t, o)

	// Listeners, container ports and Service ports agree.
	cports := map[string]int32{}
	for _, p := range c.Ports {
		cports[p.Name] = p.ContainerPort
	}
	for name, addr := range map[string]string{"grpc": cfg.Listeners.GRPC, "http-check": cfg.Listeners.HTTP, "admin": cfg.Listeners.Admin} {
		host, port, _ := strings.Cut(addr, ":")
		if p, _ := strconv.Atoi(port); host != "0.0.0.0" || int32(p) != cports[name] {
			t.Errorf("listener %s on %s, container port %d: want 0.0.0.0 on the container port", name, addr, cports[name])
		}
	}
	for _, sp := range o.svc.Spec.Ports {
		if _, ok := cports[sp.TargetPort.String()]; !ok {
			t.Errorf("Service port %s targets %s, which the container does not have", sp.Name, sp.TargetPort.String())
		}
		if sp.Name == "grpc" && (sp.AppProtocol == nil || *sp.AppProtocol != "kubernetes.io/h2c") {
			t.Error("the grpc Service port lacks appProtocol kubernetes.io/h2c")
		}
	}
	if i := slices.Index(c.Args, "--state-dir"); i < 0 || c.Args[i+1] != cfg.StateDir {
		t.Errorf("state_dir %s does not match the container's --state-dir (%v)", cfg.StateDir, c.Args)
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if cfg.DrainTimeout <= 0 || cfg.DrainTimeout >= grace {
		t.Errorf("drain_timeout %v must be positive and shorter than the grace period %v", cfg.DrainTimeout, grace)
	}
	if len(cfg.Backends) == 0 || len(cfg.Issuers) == 0 {
		t.Error("the default config has no backends or issuers")
	}

	// Probes on the admin port.
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		want := "/healthz"
		if name == "readiness" {
			want = "/readyz"
		}
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe %+v, want GET %s on port admin", name, p, want)
		}
	}

	// Hardening.
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken must be false: ccauthz never calls the API server")
	}
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("the pod must run as non-root with the RuntimeDefault seccomp profile")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("the container must have a read-only root, no privilege escalation and drop ALL capabilities")
	}

	// GOMEMLIMIT below the memory limit.
	limit := c.Resources.Limits.Memory()
	if limit.IsZero() {
		t.Fatal("no memory limit")
	}
	var gml string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			gml = e.Value
		}
	}
	q, err := resource.ParseQuantity(strings.TrimSuffix(gml, "B"))
	if err != nil || q.Cmp(*limit) >= 0 || q.Value() < limit.Value()/2 {
		t.Errorf("GOMEMLIMIT %q (%v), want between half the memory limit %s and the limit", gml, err, limit)
	}

	// Every selector selects the pods.
	podLabels := labels.Set(o.deploy.Spec.Template.Labels)
	for what, sel := range map[string]map[string]string{
		"Deployment":          o.deploy.Spec.Selector.MatchLabels,
		"Service":             o.svc.Spec.Selector,
		"PodDisruptionBudget": o.pdb.Spec.Selector.MatchLabels,
		"NetworkPolicy":       o.netpol.Spec.PodSelector.MatchLabels,
	} {
		if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(podLabels) {
			t.Errorf("%s selector %v does not select the pods %v", what, sel, podLabels)
		}
	}
	if o.pdb.Spec.MinAvailable == nil || o.pdb.Spec.MinAvailable.IntValue() >= int(*o.deploy.Spec.Replicas) {
		t.Errorf("PDB minAvailable %v must be below replicas %d, or no node could drain", o.pdb.Spec.MinAvailable, *o.deploy.Spec.Replicas)
	}

	// The NetworkPolicy opens the three ports and lets the issuers' keys in.
	open := map[string]bool{}
	for _, r := range o.netpol.Spec.Ingress {
		for _, p := range r.Ports {
			open[p.Port.String()] = true
		}
	}
	for _, name := range []string{"grpc", "http-check", "admin"} {
		if !open[name] {
			t.Errorf("NetworkPolicy does not admit port %s", name)
		}
	}
	egress := map[string]bool{}
	for _, r := range o.netpol.Spec.Egress {
		for _, p := range r.Ports {
			egress[p.Port.String()] = true
		}
	}
	if !egress["53"] || !egress["443"] {
		t.Errorf("NetworkPolicy egress ports %v, want DNS (53) and HTTPS (443) for the JWKS", egress)
	}

	// The Istio extension provider points at this release's Service.
	if g := istioProvider(t); g.GetService() != o.svc.Name+"."+"ccauthz.svc.cluster.local" {
		t.Errorf("istio/meshconfig.yaml service %s, the chart's Service is %s in namespace ccauthz", g.GetService(), o.svc.Name)
	}
}

// TestHelmChartOptional switches on the Secret (a JWKS file for an
// air-gapped issuer), extra files and the ServiceMonitor: the issuer's
// relative jwks_file resolves to the mounted Secret, and the monitor scrapes
// the Service's admin port.
func TestHelmChartOptional(t *testing.T) {
	values := map[string]any{
		"secretFiles": map[string]any{"jwks.json": `{"keys":[]}`},
		"files":       map[string]any{"README": "extra file\n"},
		"config": map[string]any{
			"issuers": []any{map[string]any{
				"name": "self_managed", "issuer": "https://gitlab.example.com",
				"jwks_file": "secrets/jwks.json", "realm": "self-managed",
			}},
			"backends": []any{map[string]any{
				"name": "ai_gateway", "manifest": "embedded:ai_gateway", "issuers": []any{"self_managed"},
			}},
		},
		"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
		"networkPolicy":  map[string]any{"checkFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "ai-gateway"}}}}},
	}
	o := renderChart(t, values)
	if o.secret == nil || o.monitor == nil {
		t.Fatal("want a Secret and a ServiceMonitor")
	}
	cfg, root := loadChartConfig(t, o)
	if len(cfg.Issuers) != 1 {
		t.Fatalf("issuers %v, want the one self-managed issuer", cfg.Issuers)
	}
	want := filepath.Join(root, "etc/ccauthz/secrets/jwks.json")
	if cfg.Issuers[0].JWKSFile != want {
		t.Errorf("jwks_file resolved to %s, want %s (the mounted Secret)", cfg.Issuers[0].JWKSFile, want)
	}
	if b, err := os.ReadFile(want); err != nil || string(b) != `{"keys":[]}` {
		t.Errorf("the Secret's jwks.json was not mounted intact: %q %v", b, err)
	}
	if o.cm.Data["README"] != "extra file\n" {
		t.Errorf("files: README %q", o.cm.Data["README"])
	}
	ep := o.monitor.Spec.Endpoints
	if len(ep) != 1 || ep[0].Port != "admin" || ep[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want /metrics on port admin", ep)
	}
	if !labels.SelectorFromSet(o.monitor.Spec.Selector.MatchLabels).Matches(labels.Set(o.svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select the Service %v", o.monitor.Spec.Selector.MatchLabels, o.svc.Labels)
	}
	if o.monitor.Labels["release"] != "prometheus" {
		t.Error("serviceMonitor.labels not applied")
	}
	if from := o.netpol.Spec.Ingress[0].From; len(from) != 1 || from[0].NamespaceSelector == nil {
		t.Errorf("networkPolicy.checkFrom not applied: %+v", from)
	}
	// A changed Secret rolls the pods.
	if o.deploy.Spec.Template.Annotations["checksum/secret"] == renderChart(t, nil).deploy.Spec.Template.Annotations["checksum/secret"] {
		t.Error("checksum/secret does not change with the Secret")
	}
}

// TestHelmValuesDocumented: every value is a row of the chart README's table.
func TestHelmValuesDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(b, &vals); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Maps whose keys are the user's (or Kubernetes') and not the chart's.
	opaque := map[string]bool{"config": true, "files": true, "secretFiles": true, "resources": true,
		"podSecurityContext": true, "securityContext": true, "service.annotations": true, "serviceMonitor.labels": true,
		"podAnnotations": true, "podLabels": true, "nodeSelector": true, "affinity": true,
		"probes.readiness": true, "probes.liveness": true, "probes.startup": true}
	var keys []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + k
			sub, isMap := v.(map[string]any)
			if isMap && !opaque[key] {
				walk(key+".", sub)
				continue
			}
			keys = append(keys, key)
		}
	}
	walk("", vals)
	sort.Strings(keys)
	for _, k := range keys {
		if !strings.Contains(string(readme), "| `"+k+"` |") {
			t.Errorf("value %s has no row in %s/README.md", k, chartDir)
		}
	}
}
