package deploy

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/config"
)

// TestKubernetesConfigMap decodes the ConfigMap's config.yaml with ccauthz's
// own loader, mounted where the Deployment mounts it, and checks that the
// two agree: listeners on every interface at the container ports, the
// config file and state directory the container's arguments name, the
// trusted issuers, and a drain shorter than the grace period.
func TestKubernetesConfigMap(t *testing.T) {
	cm := k8sDocs(t, "kubernetes/configmap.yaml")["ConfigMap"]
	if cm == nil {
		t.Fatal("kubernetes/configmap.yaml has no ConfigMap")
	}
	deploy := k8sDocs(t, "kubernetes/ccauthz.yaml")["Deployment"]
	pod := dig(t, deploy, "spec", "template", "spec")
	c := dig(t, pod, "containers", 0)

	// Where the Deployment mounts this ConfigMap, and what it runs.
	var mountDir string
	for _, v := range dig(t, pod, "volumes").([]any) {
		ref, isConfigMap := v.(map[string]any)["configMap"].(map[string]any)
		if isConfigMap && ref["name"] == dig(t, cm, "metadata", "name") {
			for _, m := range dig(t, c, "volumeMounts").([]any) {
				if dig(t, m, "name") == dig(t, v, "name") {
					mountDir = dig(t, m, "mountPath").(string)
				}
			}
		}
	}
	if mountDir == "" {
		t.Fatal("the Deployment does not mount the ConfigMap")
	}
	var args []string
	for _, a := range dig(t, c, "args").([]any) {
		args = append(args, a.(string))
	}
	flag := func(name string) string {
		i := slices.Index(args, name)
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("container args %v lack %s", args, name)
		}
		return args[i+1]
	}
	if want := mountDir + "/config.yaml"; flag("--config") != want {
		t.Errorf("--config %s, want %s (the ConfigMap's config.yaml)", flag("--config"), want)
	}

	// Decode it with the real loader, from a directory laid out like the mount.
	data, _ := dig(t, cm, "data", "config.yaml").(string)
	if data == "" {
		t.Fatal("the ConfigMap has no config.yaml")
	}
	data = k8sMountTLSSecret(t, pod, c, data)
	dir := filepath.Join(t.TempDir(), strings.TrimPrefix(mountDir, "/"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("configmap.yaml config.yaml:\n%v", err)
	}

	ports := map[string]int{}
	for _, p := range dig(t, c, "ports").([]any) {
		ports[dig(t, p, "name").(string)] = dig(t, p, "containerPort").(int)
	}
	for name, addr := range map[string]string{"grpc": cfg.Listeners.GRPC, "http-check": cfg.Listeners.HTTP, "admin": cfg.Listeners.Admin} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("listener %s: %v", name, err)
			continue
		}
		if host != "0.0.0.0" {
			t.Errorf("listener %s on %s: a pod must listen on 0.0.0.0 to be reachable", name, addr)
		}
		if p, _ := strconv.Atoi(port); p != ports[name] {
			t.Errorf("listener %s on port %s, container port %d", name, port, ports[name])
		}
	}
	if cfg.StateDir != flag("--state-dir") {
		t.Errorf("state_dir %s, container --state-dir %s", cfg.StateDir, flag("--state-dir"))
	}
	issuers := map[string]bool{}
	for _, is := range cfg.Issuers {
		issuers[is.Issuer] = true
	}
	if !issuers["https://gitlab.com"] || !issuers["https://customers.gitlab.com"] {
		t.Errorf("issuers %v, want gitlab.com and CustomersDot", issuers)
	}
	if len(cfg.Backends) == 0 {
		t.Error("no backends")
	}
	grace := time.Duration(dig(t, pod, "terminationGracePeriodSeconds").(int)) * time.Second
	if cfg.DrainTimeout >= grace {
		t.Errorf("drain_timeout %v must be shorter than terminationGracePeriodSeconds %v", cfg.DrainTimeout, grace)
	}
}
