package export

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"hutch/plan"
	"hutch/spec"
)

// kubeOf builds the manifest file and maps it, with each container's image
// named localhost/hutch/NAME:latest.
func kubeOf(t *testing.T, file string) (string, []map[string]any) {
	t.Helper()
	m, err := spec.LoadAndValidate([]string{file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(m); err != nil {
		t.Fatal(err)
	}
	d, err := plan.Build(m, plan.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]string{}
	for _, c := range d.Containers {
		images[c.Name] = Ref(DefaultRepository, c.Name, DefaultTag)
	}
	b, err := Kube(m, d, images, []string{"header line"})
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		docs = append(docs, doc)
	}
	return string(b), docs
}

// at walks a decoded document by map keys and list indexes.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %T is not a map", path, v)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: %v has no item %d", path, v, k)
			}
			v = l[k]
		}
	}
	return v
}

func find(docs []map[string]any, kind, name string) map[string]any {
	for _, d := range docs {
		if d["kind"] == kind && d["metadata"].(map[string]any)["name"] == name {
			return d
		}
	}
	return nil
}

func TestKubeWebserver(t *testing.T) {
	text, docs := kubeOf(t, "../manifests/webserver.yaml")
	if len(docs) != 2 {
		t.Fatalf("%d documents, want a Pod and a Service:\n%s", len(docs), text)
	}
	pod := find(docs, "Pod", "webserver")
	if pod == nil || pod["apiVersion"] != "v1" {
		t.Fatalf("no Pod webserver:\n%s", text)
	}
	c := at(t, pod, "spec", "containers", 0)
	checks := []struct {
		path []any
		want any
	}{
		{[]any{"image"}, "localhost/hutch/webserver:latest"},
		{[]any{"imagePullPolicy"}, "IfNotPresent"},
		{[]any{"command", 0}, "python3"},
		{[]any{"args", 0}, "/server.py"},
		{[]any{"workingDir"}, "/"},
		{[]any{"env", 1, "name"}, "PYTHONUNBUFFERED"},
		{[]any{"env", 1, "value"}, "1"},
		{[]any{"ports", 0, "containerPort"}, 8000},
		{[]any{"ports", 0, "hostPort"}, 8080},
		{[]any{"ports", 0, "protocol"}, "TCP"},
		{[]any{"resources", "limits", "memory"}, "50Mi"},
		{[]any{"resources", "limits", "cpu"}, "1000m"},
		{[]any{"securityContext", "runAsUser"}, 0},
		{[]any{"securityContext", "runAsGroup"}, 0},
		{[]any{"securityContext", "allowPrivilegeEscalation"}, false},
		{[]any{"securityContext", "readOnlyRootFilesystem"}, false},
		{[]any{"securityContext", "capabilities", "drop", 0}, "ALL"},
		{[]any{"securityContext", "seccompProfile", "type"}, "RuntimeDefault"},
		{[]any{"readinessProbe", "httpGet", "path"}, "/"},
		{[]any{"readinessProbe", "httpGet", "port"}, 8000},
		{[]any{"readinessProbe", "periodSeconds"}, 10},
		{[]any{"readinessProbe", "timeoutSeconds"}, 3},
		{[]any{"readinessProbe", "failureThreshold"}, 3},
	}
	for _, ch := range checks {
		if got := at(t, c, ch.path...); got != ch.want {
			t.Errorf("container %v: %v, want %v", ch.path, got, ch.want)
		}
	}
	add := at(t, c, "securityContext", "capabilities", "add").([]any)
	if len(add) != 14 || add[0] != "AUDIT_WRITE" || add[len(add)-1] != "SYS_CHROOT" {
		t.Errorf("capabilities add %v: want Docker's 14 without CAP_", add)
	}
	if at(t, pod, "spec", "restartPolicy") != "Never" || at(t, pod, "spec", "hostname") != "webserver" {
		t.Errorf("pod spec: %v", pod["spec"])
	}
	if at(t, pod, "metadata", "labels", "tutorial") != "seed" || at(t, pod, "metadata", "labels", ContainerLabel) != "webserver" {
		t.Errorf("labels: %v", at(t, pod, "metadata", "labels"))
	}
	svc := find(docs, "Service", "webserver-8080")
	if svc == nil {
		t.Fatalf("no Service webserver-8080:\n%s", text)
	}
	if at(t, svc, "spec", "ports", 0, "port") != 8080 || at(t, svc, "spec", "ports", 0, "targetPort") != 8000 ||
		at(t, svc, "spec", "selector", ContainerLabel) != "webserver" {
		t.Errorf("service: %v", svc["spec"])
	}
	for _, note := range []string{"# header line", "spec.network.interfaces[0] (veth1 172.16.0.2/24, host end veth0 172.16.0.1/24)", "spec.network.namespace (container_ns)", "no livenessProbe"} {
		if !strings.Contains(text, note) {
			t.Errorf("no comment %q:\n%s", note, text)
		}
	}
}

func TestKubeLab(t *testing.T) {
	text, docs := kubeOf(t, "../manifests/lab.yaml")
	client := find(docs, "Pod", "client")
	if client == nil || at(t, client, "metadata", "labels", NetworkLabelPrefix+"labnet") != "true" {
		t.Fatalf("client Pod without its network label:\n%s", text)
	}
	np := find(docs, "NetworkPolicy", "network-labnet")
	if np == nil {
		t.Fatalf("no NetworkPolicy network-labnet:\n%s", text)
	}
	if at(t, np, "spec", "podSelector", "matchLabels", NetworkLabelPrefix+"labnet") != "true" ||
		at(t, np, "spec", "ingress", 0, "from", 0, "podSelector", "matchLabels", NetworkLabelPrefix+"labnet") != "true" ||
		at(t, np, "spec", "policyTypes", 0) != "Ingress" {
		t.Errorf("network policy: %v", np["spec"])
	}
	if !strings.Contains(text, "spec.dependsOn server (healthy)") {
		t.Errorf("no comment on client's dependsOn:\n%s", text)
	}
}

func TestKubeLinksAndRouterAreNamed(t *testing.T) {
	text, _ := kubeOf(t, "../manifests/lab-router.yaml")
	if !strings.Contains(text, "# Not mapped: link ") {
		t.Errorf("no comment naming the links:\n%s", text)
	}
	if !strings.Contains(text, "spec.sysctls") {
		t.Errorf("the router's sysctls are not named:\n%s", text)
	}
}

func TestServiceName(t *testing.T) {
	for _, c := range []struct {
		name string
		port spec.Port
		want string
	}{
		{"web", spec.Port{HostPort: 8080}, "web-8080"},
		{"dns", spec.Port{HostPort: 53, Protocol: "udp"}, "dns-53-udp"},
		{"1web", spec.Port{HostPort: 80}, "svc-1web-80"},
		{strings.Repeat("a", 63), spec.Port{HostPort: 80}, strings.Repeat("a", 60) + "-80"},
	} {
		if got := serviceName(c.name, c.port); got != c.want {
			t.Errorf("serviceName(%q, %d): %q, want %q", c.name, c.port.HostPort, got, c.want)
		}
	}
}
