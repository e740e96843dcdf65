package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/certs/certstest"
	"github.com/ccauthz/ccauthz/authz/config"
)

// tlsSecretKeys are the keys of the ccauthz-tls Secret (ccauthz.yaml's
// header says how to create it).
var tlsSecretKeys = []string{"tls.crt", "tls.key", "client-ca.crt"}

// k8sMountTLSSecret lays out the Deployment's TLS Secret mount under a
// temporary root with real generated certificates (a serving pair and a
// client CA, under the Secret's keys) and returns data with the mount path
// pointing there, so the real config loader reads and checks them. Every
// file the config names under the mount must be one of the Secret's keys.
func k8sMountTLSSecret(t *testing.T, pod, container any, data string) string {
	t.Helper()
	var mount string
	for _, v := range dig(t, pod, "volumes").([]any) {
		sec, ok := v.(map[string]any)["secret"].(map[string]any)
		if !ok || sec["secretName"] != "ccauthz-tls" {
			continue
		}
		for _, m := range dig(t, container, "volumeMounts").([]any) {
			if dig(t, m, "name") == dig(t, v, "name") {
				mount = dig(t, m, "mountPath").(string)
				if dig(t, m, "readOnly") != true {
					t.Error("the TLS Secret must be mounted read-only")
				}
			}
		}
	}
	if mount == "" {
		t.Fatal("the Deployment does not mount the ccauthz-tls Secret")
	}
	for _, m := range regexp.MustCompile(regexp.QuoteMeta(mount)+`/([^\s]+)`).FindAllStringSubmatch(data, -1) {
		if !slices.Contains(tlsSecretKeys, m[1]) {
			t.Errorf("config names %s/%s, which is not a key of the ccauthz-tls Secret %v", mount, m[1], tlsSecretKeys)
		}
	}
	root := t.TempDir()
	dir := filepath.Join(root, strings.TrimPrefix(mount, "/"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := certstest.NewCA(t, dir, "ca")
	pair := ca.Server(t, dir, "server")
	certstest.NewCA(t, dir, "client-ca") // → client-ca.crt
	for from, to := range map[string]string{pair.CertFile: "tls.crt", pair.KeyFile: "tls.key"} {
		if err := os.Rename(from, filepath.Join(dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	return strings.ReplaceAll(data, mount+"/", dir+"/")
}

// k8sConfig decodes the ConfigMap's config with the TLS Secret laid out.
func k8sConfig(t *testing.T) (*config.Config, any) {
	t.Helper()
	cm := k8sDocs(t, "kubernetes/configmap.yaml")["ConfigMap"]
	pod := dig(t, k8sDocs(t, "kubernetes/ccauthz.yaml")["Deployment"], "spec", "template", "spec")
	data := k8sMountTLSSecret(t, pod, dig(t, pod, "containers", 0), dig(t, cm, "data", "config.yaml").(string))
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("configmap.yaml config.yaml:\n%v", err)
	}
	return cfg, pod
}

// TestKubernetesTLSAndDrain: the check listeners serve TLS (gRPC with
// mTLS) from the Secret, the admin listener stays plaintext for the
// kubelet's probes, and the pod's grace period covers the drain delay plus
// the graceful stop, with a drain delay long enough for the readiness probe
// to take the pod out of rotation.
func TestKubernetesTLSAndDrain(t *testing.T) {
	cfg, pod := k8sConfig(t)
	if !cfg.TLS.GRPC.Enabled() || cfg.TLS.GRPC.ClientCAFile == "" {
		t.Error("the gRPC listener must serve mTLS")
	}
	if !cfg.TLS.HTTP.Enabled() {
		t.Error("the HTTP check listener must serve TLS")
	}
	c := dig(t, pod, "containers", 0)
	if cfg.TLS.Admin.Enabled() && dig(t, c, "readinessProbe", "httpGet", "scheme") != "HTTPS" {
		t.Error("admin serves TLS but the probes speak HTTP")
	}
	grace := time.Duration(dig(t, pod, "terminationGracePeriodSeconds").(int)) * time.Second
	if cfg.DrainDelay+cfg.DrainTimeout >= grace {
		t.Errorf("drain_delay %v + drain_timeout %v must be shorter than terminationGracePeriodSeconds %v",
			cfg.DrainDelay, cfg.DrainTimeout, grace)
	}
	probe := time.Duration(dig(t, c, "readinessProbe", "periodSeconds").(int)*dig(t, c, "readinessProbe", "failureThreshold").(int)) * time.Second
	if cfg.DrainDelay < probe {
		t.Errorf("drain_delay %v is shorter than the readiness probe needs to fail (%v)", cfg.DrainDelay, probe)
	}
}

// parseQuantity parses the Kubernetes memory quantities used here (Mi, Gi,
// Ki, or bytes) and GOMEMLIMIT's (MiB, GiB, KiB, or bytes).
func parseQuantity(t *testing.T, q string) int64 {
	t.Helper()
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}} {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("quantity %q: %v", q, err)
			}
			return v * u.mult
		}
	}
	v, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		t.Fatalf("quantity %q: %v", q, err)
	}
	return v
}

// TestKubernetesHardening: no service-account token, a pinned image,
// GOMEMLIMIT in step with the memory limit, and a NetworkPolicy that admits
// only the gateway to the check ports.
func TestKubernetesHardening(t *testing.T) {
	docs := k8sDocs(t, "kubernetes/ccauthz.yaml")
	pod := dig(t, docs["Deployment"], "spec", "template", "spec")
	if dig(t, pod, "automountServiceAccountToken") != false {
		t.Error("automountServiceAccountToken must be false: ccauthz never calls the Kubernetes API")
	}
	c := dig(t, pod, "containers", 0)
	image := dig(t, c, "image").(string)
	if !regexp.MustCompile(`(:v?[0-9][0-9A-Za-z.\-]*|@sha256:[0-9a-f]{64})$`).MatchString(image) || strings.HasSuffix(image, ":latest") {
		t.Errorf("image %q is not pinned to a version tag or digest", image)
	}
	limit := parseQuantity(t, dig(t, c, "resources", "limits", "memory").(string))
	var gomemlimit string
	for _, e := range dig(t, c, "env").([]any) {
		if dig(t, e, "name") == "GOMEMLIMIT" {
			gomemlimit = dig(t, e, "value").(string)
		}
	}
	if gomemlimit == "" {
		t.Fatal("no GOMEMLIMIT in the container's env")
	}
	if got := parseQuantity(t, gomemlimit); got < limit*85/100 || got > limit*92/100 {
		t.Errorf("GOMEMLIMIT %s is %d%% of limits.memory, want about 90%%", gomemlimit, got*100/limit)
	}

	np := docs["NetworkPolicy"]
	if np == nil {
		t.Fatal("kubernetes/ccauthz.yaml has no NetworkPolicy")
	}
	if dig(t, np, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name") != dig(t, docs["Deployment"], "spec", "template", "metadata", "labels", "app.kubernetes.io/name") {
		t.Error("the NetworkPolicy does not select the ccauthz pods")
	}
	if types := dig(t, np, "spec", "policyTypes").([]any); !slices.Contains(types, any("Ingress")) {
		t.Error("the NetworkPolicy must restrict ingress")
	}
	checkPorts := map[any]bool{"grpc": true, "http-check": true, 9191: true, 9192: true}
	admitted := map[any]bool{}
	for _, rule := range dig(t, np, "spec", "ingress").([]any) {
		r := rule.(map[string]any)
		ports, _ := r["ports"].([]any)
		if len(ports) == 0 {
			t.Error("an ingress rule without ports admits every port")
			continue
		}
		for _, p := range ports {
			port := dig(t, p, "port")
			if !checkPorts[port] {
				continue
			}
			admitted[port] = true
			from, _ := r["from"].([]any)
			if len(from) == 0 {
				t.Errorf("check port %v is open to every source", port)
			}
			for _, peer := range from {
				if _, ok := peer.(map[string]any)["podSelector"]; !ok {
					t.Errorf("check port %v admits a peer without a pod selector (not only the gateway): %v", port, peer)
				}
			}
		}
	}
	if !admitted["grpc"] || !admitted["http-check"] {
		t.Errorf("the gateway is not admitted to both check ports: %v", admitted)
	}
}

// TestDockerignore keeps the dev issuer's private key, local binaries and
// the git history out of the image's build context (the repository root).
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{".state/", "bin/", ".git"} {
		if !lines[want] {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
