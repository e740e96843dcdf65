package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// k8sDocs decodes every document of a multi-document Kubernetes YAML file,
// keyed by kind.
func k8sDocs(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		kind, _ := doc["kind"].(string)
		if kind == "" || doc["apiVersion"] == nil {
			t.Fatalf("%s: a document without kind/apiVersion", path)
		}
		out[kind] = doc
	}
	return out
}

// dig walks nested maps and lists: a string key indexes a map, an int a list.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: not a mapping", path)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: not a list with index %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

func TestKubernetesManifests(t *testing.T) {
	docs := k8sDocs(t, "kubernetes/ccauthz.yaml")
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget"} {
		if docs[kind] == nil {
			t.Fatalf("kubernetes/ccauthz.yaml has no %s", kind)
		}
	}
	c := dig(t, docs["Deployment"], "spec", "template", "spec", "containers", 0)
	ports := map[string]int{}
	for _, p := range dig(t, c, "ports").([]any) {
		ports[dig(t, p, "name").(string)] = dig(t, p, "containerPort").(int)
	}
	want := map[string]int{"grpc": 9191, "http-check": 9192, "admin": 8181}
	for name, port := range want {
		if ports[name] != port {
			t.Errorf("container port %s = %d, want %d", name, ports[name], port)
		}
	}
	if got := dig(t, c, "readinessProbe", "httpGet", "path"); got != "/readyz" {
		t.Errorf("readiness probe path %v, want /readyz", got)
	}
	if got := dig(t, c, "livenessProbe", "httpGet", "path"); got != "/healthz" {
		t.Errorf("liveness probe path %v, want /healthz", got)
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if got := dig(t, c, probe, "httpGet", "port"); got != "admin" {
			t.Errorf("%s port %v, want the admin port", probe, got)
		}
	}
	if dig(t, c, "securityContext", "readOnlyRootFilesystem") != true || dig(t, c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Error("container must run with a read-only root and no privilege escalation")
	}
	if dig(t, docs["Deployment"], "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Error("pod must run as non-root")
	}
	svcPorts := map[string]int{}
	for _, p := range dig(t, docs["Service"], "spec", "ports").([]any) {
		svcPorts[dig(t, p, "name").(string)] = dig(t, p, "port").(int)
	}
	for name, port := range want {
		if svcPorts[name] != port {
			t.Errorf("service port %s = %d, want %d", name, svcPorts[name], port)
		}
	}
	sel := dig(t, docs["PodDisruptionBudget"], "spec", "selector", "matchLabels", "app.kubernetes.io/name")
	if sel != dig(t, docs["Deployment"], "spec", "template", "metadata", "labels", "app.kubernetes.io/name") {
		t.Error("PodDisruptionBudget does not select the Deployment's pods")
	}
	replicas := dig(t, docs["Deployment"], "spec", "replicas").(int)
	if minAv := dig(t, docs["PodDisruptionBudget"], "spec", "minAvailable").(int); minAv >= replicas {
		t.Errorf("PDB minAvailable %d would block every voluntary eviction of %d replicas", minAv, replicas)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	var user, entry string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entry = strings.Join(f[1:], " ")
		}
	}
	if len(froms) < 2 || !strings.HasPrefix(froms[len(froms)-1], "gcr.io/distroless/static") {
		t.Errorf("final stage must be distroless/static, got %v", froms)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("final stage must run as non-root, USER %q", user)
	}
	if !strings.Contains(string(b), "CGO_ENABLED=0") {
		t.Error("the binary must be static (CGO_ENABLED=0) for distroless/static")
	}
	if !strings.Contains(entry, "ccauthz") {
		t.Errorf("entrypoint %q does not run ccauthz", entry)
	}
}

func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/ccauthz.service")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]map[string]string{}
	var cur string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = strings.Trim(line, "[]")
			sections[cur] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == "" {
				t.Fatalf("systemd/ccauthz.service:%d: not a key=value line in a section: %q", i+1, line)
			}
			sections[cur][k] = v
		}
	}
	svc := sections["Service"]
	if !strings.Contains(svc["ExecStart"], "ccauthz serve --config") {
		t.Errorf("ExecStart %q", svc["ExecStart"])
	}
	if !strings.Contains(svc["ExecReload"], "-HUP") {
		t.Errorf("ExecReload must send SIGHUP, got %q", svc["ExecReload"])
	}
	for _, k := range []string{"DynamicUser", "NoNewPrivileges"} {
		if svc[k] != "yes" {
			t.Errorf("%s=%q, want yes", k, svc[k])
		}
	}
	if sections["Install"]["WantedBy"] == "" {
		t.Error("no [Install] WantedBy")
	}
	// systemd-analyze verify checks the unit the way systemd would load it;
	// it needs the ExecStart binary to exist, so point it at a stand-in.
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		dir := t.TempDir()
		unit := strings.ReplaceAll(string(b), "/usr/local/bin/ccauthz", "/bin/true")
		path := dir + "/ccauthz.service"
		if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", path).CombinedOutput()
		// Outside a booted systemd, verify may complain about the manager
		// itself; only complaints about our unit count.
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "ccauthz.service") {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
		_ = err
	}
}
