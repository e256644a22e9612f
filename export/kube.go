package export

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"hutch/plan"
	"hutch/spec"
)

// ContainerLabel is the Pod label naming the hutch container a Pod is: the
// selector of its Services and NetworkPolicies.
const ContainerLabel = "hutch/container"

// NetworkLabelPrefix starts the label a Pod carries for each hutch network
// it is attached to: hutch.network/NAME: "true".
const NetworkLabelPrefix = "hutch.network/"

// kubeDoc is one YAML document: an object and the comment above it.
type kubeDoc struct {
	obj     kubeObject
	comment []string
}

// Kube writes the Kubernetes YAML of the manifest's containers: for each
// container, in the order of the plan, a Pod running the image images
// names for it and a Service per published port; then a NetworkPolicy per
// hutch network. Every field of the manifest that has no Kubernetes
// counterpart is named, with the reason, in a comment above the object it
// belongs to (docs/kubernetes.md has the whole mapping). header starts the
// file, as comment lines.
func Kube(m *spec.Manifest, d *plan.Desired, images map[string]string, header []string) ([]byte, error) {
	var docs []kubeDoc
	for _, c := range d.Containers {
		sc := findContainer(m, c.Name)
		if sc == nil {
			return nil, fmt.Errorf("kube: container %s: not in the manifest", c.Name)
		}
		img, ok := images[c.Name]
		if !ok {
			return nil, fmt.Errorf("kube: container %s: no image", c.Name)
		}
		docs = append(docs, pod(c, sc, img))
		docs = append(docs, services(sc)...)
	}
	docs = append(docs, networkPolicies(m)...)
	var buf bytes.Buffer
	for _, h := range header {
		buf.WriteString(commentLine(h))
	}
	if links := unmappedLinks(m); len(links) > 0 {
		for _, l := range links {
			buf.WriteString(commentLine(l))
		}
		buf.WriteString(commentLine(""))
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, doc := range docs {
		var n yaml.Node
		if err := n.Encode(doc.obj); err != nil {
			return nil, fmt.Errorf("kube: %s %s: %w", doc.obj.Kind, doc.obj.Metadata.Name, err)
		}
		n.HeadComment = strings.Join(doc.comment, "\n")
		if err := enc.Encode(&n); err != nil {
			return nil, fmt.Errorf("kube: %s %s: %w", doc.obj.Kind, doc.obj.Metadata.Name, err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func commentLine(s string) string {
	if s == "" {
		return "#\n"
	}
	return "# " + s + "\n"
}

// findContainer is the manifest's document of container name.
func findContainer(m *spec.Manifest, name string) *spec.Container {
	for _, c := range m.Containers {
		if c.Metadata.Name == name {
			return c
		}
	}
	return nil
}

// podLabels are the container's labels, its ContainerLabel and one label
// per network it is attached to.
func podLabels(sc *spec.Container) map[string]string {
	labels := map[string]string{}
	for k, v := range sc.Metadata.Labels {
		labels[k] = v
	}
	labels[ContainerLabel] = sc.Metadata.Name
	for _, n := range networksOf(sc) {
		labels[NetworkLabelPrefix+n] = "true"
	}
	return labels
}

// networksOf are the hutch networks the container's interfaces attach to.
func networksOf(sc *spec.Container) []string {
	var out []string
	if sc.Spec.Network == nil {
		return nil
	}
	for _, i := range sc.Spec.Network.Interfaces {
		if i.Network != "" && !contains(out, i.Network) {
			out = append(out, i.Network)
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// pod is the container's Pod.
func pod(c *plan.Container, sc *spec.Container, image string) kubeDoc {
	var notes []string
	p := c.Spec.Process
	kc := kubeContainer{
		Name:            c.Name,
		Image:           image,
		ImagePullPolicy: "IfNotPresent",
		WorkingDir:      p.Cwd,
	}
	if len(p.Args) > 0 {
		kc.Command = []string{p.Args[0]}
		kc.Args = append([]string(nil), p.Args[1:]...)
	}
	for _, e := range p.Env {
		k, v, _ := strings.Cut(e, "=")
		kc.Env = append(kc.Env, envVar{Name: k, Value: v})
	}
	kc.Ports = containerPorts(sc)
	kc.Resources, notes = resourcesOf(c, sc, notes)
	kc.SecurityContext, notes = securityOf(c, sc, notes)
	kc.ReadinessProbe, notes = readinessOf(c, notes)
	ps := podSpec{Hostname: c.Spec.Hostname, RestartPolicy: "Never", Containers: []kubeContainer{kc}}
	ps.Containers[0].VolumeMounts, ps.Volumes, notes = volumesOf(sc, notes)
	ps.SecurityContext, notes = podSecurityOf(c, sc, notes)
	notes = processNotes(c, sc, &ps, notes)
	notes = networkNotes(sc, notes)
	comment := []string{fmt.Sprintf("hutch container %s (%s, document %d).", c.Name, c.Source.File, c.Source.Doc)}
	if len(notes) > 0 {
		comment = append(comment, "Not mapped, or mapped only in part:")
		for _, n := range notes {
			comment = append(comment, "  "+n)
		}
	}
	return kubeDoc{
		obj: kubeObject{APIVersion: "v1", Kind: "Pod",
			Metadata: kubeMeta{Name: c.Name, Labels: podLabels(sc)},
			Spec:     ps},
		comment: comment,
	}
}

// kubeProtocol is a port's protocol as Kubernetes spells it.
func kubeProtocol(p string) string { return strings.ToUpper(protocol(p)) }

// containerPorts are the published ports: containerPort with the hostPort
// (and hostIP) that hutch forwards, which podman kube play publishes on the
// host as hutch does and a kubelet opens on the Pod's node.
func containerPorts(sc *spec.Container) []containerPort {
	if sc.Spec.Network == nil {
		return nil
	}
	var out []containerPort
	for _, p := range sc.Spec.Network.Ports {
		out = append(out, containerPort{ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIP: p.HostIP, Protocol: kubeProtocol(p.Protocol)})
	}
	return out
}

// resourcesOf maps the cgroup limits: memory in bytes, CPU as millicores
// of quota per period. Limits only: Kubernetes sets the requests to them.
func resourcesOf(c *plan.Container, sc *spec.Container, notes []string) (*resources, []string) {
	cg := cgroupOf(c)
	if cg == nil {
		return nil, notes
	}
	lim := map[string]string{}
	if cg.Memory.Limit > 0 {
		lim["memory"] = quantity(cg.Memory.Limit)
	}
	if cg.CPU.Quota > 0 {
		period := cg.CPU.Period
		if period == 0 {
			period = 100000
		}
		milli := (cg.CPU.Quota*1000 + int64(period) - 1) / int64(period)
		lim["cpu"] = fmt.Sprintf("%dm", milli)
	}
	rs := sc.Spec.Resources
	if cg.Pids > 0 {
		notes = append(notes, fmt.Sprintf("spec.resources.pids (%d): a Pod has no pids limit of its own; the kubelet's podPidsLimit bounds every Pod of a node", cg.Pids))
	}
	if rs.MemorySwap != "" {
		notes = append(notes, fmt.Sprintf("spec.resources.memorySwap (%s): Kubernetes decides swap per node (the kubelet's memorySwap.swapBehavior)", rs.MemorySwap))
	}
	if cg.CPU.Weight != 0 {
		notes = append(notes, fmt.Sprintf("spec.resources.cpuWeight (%d): the CPU request sets the weight, in proportion to it", cg.CPU.Weight))
	}
	if cg.CPU.Cpus != "" || cg.CPU.Mems != "" {
		notes = append(notes, fmt.Sprintf("spec.resources.cpuset (cpus %q, mems %q): CPUs are pinned by the kubelet's static CPU manager policy, for whole-CPU requests, not by the Pod", cg.CPU.Cpus, cg.CPU.Mems))
	}
	if len(lim) == 0 {
		return nil, notes
	}
	return &resources{Limits: lim}, notes
}

// quantity is a byte count as a Kubernetes quantity: Gi, Mi or Ki when it
// is a whole number of them (hutch's M is Kubernetes's Mi), else bytes.
func quantity(b int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if b%u.size == 0 {
			return strconv.FormatInt(b/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(b, 10)
}

// securityOf maps the process's user, capabilities, no_new_privs, the
// read-only root and the seccomp profile.
func securityOf(c *plan.Container, sc *spec.Container, notes []string) (*containerSecurity, []string) {
	p := c.Spec.Process
	uid, gid := int64(p.User.UID), int64(p.User.GID)
	s := &containerSecurity{RunAsUser: &uid, RunAsGroup: &gid, ReadOnlyRootFilesystem: c.Spec.Root != nil && c.Spec.Root.Readonly}
	escalate := !p.NoNewPrivileges
	s.AllowPrivilegeEscalation = &escalate
	caps := &capabilities{Drop: []string{"ALL"}}
	if p.Capabilities != nil {
		for _, cp := range p.Capabilities.Bounding {
			caps.Add = append(caps.Add, strings.TrimPrefix(cp, "CAP_"))
		}
		sort.Strings(caps.Add)
	}
	s.Capabilities = caps
	switch prof := sc.Spec.Security.Seccomp; prof {
	case "", "default":
		s.SeccompProfile = &seccompProfile{Type: "RuntimeDefault"}
	case "unconfined":
		s.SeccompProfile = &seccompProfile{Type: "Unconfined"}
	default:
		local := "hutch/" + path.Base(prof)
		s.SeccompProfile = &seccompProfile{Type: "Localhost", LocalhostProfile: local}
		notes = append(notes, fmt.Sprintf("spec.security.seccomp (%s): copy the profile to the kubelet's seccomp folder as %s (/var/lib/kubelet/seccomp/%s on each node)", prof, local, local))
	}
	sec := sc.Spec.Security
	if len(sec.MaskedPaths) > 0 || len(sec.ReadonlyPaths) > 0 {
		notes = append(notes, "spec.security.maskedPaths, readonlyPaths: a Pod has the runtime's default masked and read-only /proc paths (procMount: Default); it cannot name others")
	}
	if sec.UserNamespace != nil {
		notes = append(notes, "spec.security.userNamespace: hostUsers: false gives a Pod a user namespace whose mappings the kubelet chooses; hutch's own mappings cannot be given")
	}
	return s, notes
}

// seconds is d in whole seconds, rounded up, at least 1: probes and grace
// periods count whole seconds.
func seconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		return 1
	}
	return s
}

// readinessOf maps the health check to a readinessProbe: hutch's healthy
// is Kubernetes's ready (it gates dependsOn in hutch, Service traffic in a
// cluster). No livenessProbe: hutch restarts a process when it exits, never
// because it is unhealthy.
func readinessOf(c *plan.Container, notes []string) (*probe, []string) {
	pr := processOf(c)
	if pr == nil || pr.Health == nil {
		return nil, notes
	}
	h := pr.Health
	p := &probe{PeriodSeconds: seconds(h.Interval), TimeoutSeconds: seconds(h.Timeout), SuccessThreshold: 1, FailureThreshold: h.Retries}
	switch h.Kind {
	case "http":
		p.HTTPGet = &httpGet{Path: h.Path, Port: h.Port}
		notes = append(notes, "spec.healthCheck.http: the kubelet asks the Pod's address, not its 127.0.0.1: the server must listen on every address")
	case "tcp":
		p.TCPSocket = &tcpSocket{Port: h.Port}
		notes = append(notes, "spec.healthCheck.tcp: the kubelet connects to the Pod's address, not its 127.0.0.1: the server must listen on every address")
	case "exec":
		p.Exec = &execProbe{Command: append([]string(nil), h.Command...)}
	}
	notes = append(notes, fmt.Sprintf("spec.healthCheck.startInterval (%s), startPeriod (%s): a probe runs every periodSeconds from the start; a readiness probe's failures before its first pass only keep the Pod unready", h.StartInterval, h.StartPeriod))
	notes = append(notes, "spec.healthCheck: no livenessProbe, since hutch never restarts a process for being unhealthy; add one like the readinessProbe to have the kubelet do so")
	return p, notes
}

// volumesOf maps bind mounts to hostPath volumes and tmpfs mounts to
// memory-backed emptyDir volumes.
func volumesOf(sc *spec.Container, notes []string) ([]volumeMount, []volume, []string) {
	var (
		vm []volumeMount
		vs []volume
	)
	for i, m := range sc.Spec.Mounts {
		name := fmt.Sprintf("mount-%d", i)
		vm = append(vm, volumeMount{Name: name, MountPath: m.Destination, ReadOnly: m.ReadOnly})
		switch m.Type {
		case "bind":
			vs = append(vs, volume{Name: name, HostPath: &hostPath{Path: m.Source}})
			notes = append(notes, fmt.Sprintf("spec.mounts[%d] (bind %s): a hostPath is the node's folder, not this host's: the data must be there", i, m.Source))
		case "tmpfs":
			ed := &emptyDir{Medium: "Memory"}
			if m.Size != "" {
				if b, err := spec.ParseMemory(m.Size); err == nil && b > 0 {
					ed.SizeLimit = quantity(b)
				}
			}
			vs = append(vs, volume{Name: name, EmptyDir: ed})
			if m.Mode != "" {
				notes = append(notes, fmt.Sprintf("spec.mounts[%d].mode (%s): an emptyDir's mode is the kubelet's", i, m.Mode))
			}
		}
	}
	return vm, vs, notes
}

// podSecurityOf maps the supplementary groups and the network namespace's
// sysctls, which are a Pod's (every container of a Pod shares its network
// namespace).
func podSecurityOf(c *plan.Container, sc *spec.Container, notes []string) (*podSecurity, []string) {
	ps := &podSecurity{}
	for _, g := range c.Spec.Process.User.AdditionalGids {
		ps.SupplementalGroups = append(ps.SupplementalGroups, int64(g))
	}
	var names []string
	for k := range sc.Spec.Sysctls {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		ps.Sysctls = append(ps.Sysctls, sysctl{Name: k, Value: sc.Spec.Sysctls[k]})
	}
	if len(names) > 0 {
		notes = append(notes, "spec.sysctls: mapped, but a kubelet runs a Pod with sysctls outside its safe set only when --allowed-unsafe-sysctls names them")
	}
	if len(ps.SupplementalGroups) == 0 && len(ps.Sysctls) == 0 {
		return nil, notes
	}
	return ps, notes
}

// processNotes maps the restart policy and the stop timeout, and names what
// of the process and of the supervisor has no Pod field.
func processNotes(c *plan.Container, sc *spec.Container, ps *podSpec, notes []string) []string {
	pr := processOf(c)
	if pr != nil {
		switch pr.Restart.Policy {
		case "always":
			ps.RestartPolicy = "Always"
		case "on-failure":
			ps.RestartPolicy = "OnFailure"
		}
		if pr.Restart.MaxRetries > 0 {
			notes = append(notes, fmt.Sprintf("spec.restartPolicy.maxRetries (%d): the kubelet restarts with a back-off up to 5 minutes, without a bound", pr.Restart.MaxRetries))
		}
		grace := seconds(pr.StopTimeout)
		ps.TerminationGracePeriodSeconds = &grace
		if pr.StopSignal != "" && pr.StopSignal != "SIGTERM" {
			notes = append(notes, fmt.Sprintf("spec.process.stopSignal (%s): the image's StopSignal carries it (containerd, CRI-O and podman send the image's stop signal)", pr.StopSignal))
		}
		for _, d := range pr.After {
			notes = append(notes, fmt.Sprintf("spec.dependsOn %s (%s): Pods start in no order; the client must retry until %s answers (its Service), or add an initContainer that waits with a tool its image holds", d.Container, d.Condition, d.Container))
		}
	}
	if len(c.Spec.Process.Rlimits) > 0 {
		notes = append(notes, "spec.process.rlimits: a Pod has no rlimits; the container runtime's defaults apply")
	}
	if sc.Spec.Process.StartWindow != "" && sc.Spec.Process.StartWindow != "0s" {
		notes = append(notes, fmt.Sprintf("spec.process.startWindow (%s): hutch apply's watch of a fresh process; kubectl wait --for=condition=Ready is the cluster's", sc.Spec.Process.StartWindow))
	}
	if sc.Spec.Logs != nil {
		notes = append(notes, "spec.logs: the kubelet rotates every container's log (containerLogMaxSize, containerLogMaxFiles)")
	}
	return notes
}

// networkNotes names what of the network block has no Pod field: a Pod has
// the one interface and address the cluster's network plugin gives it.
func networkNotes(sc *spec.Container, notes []string) []string {
	n := sc.Spec.Network
	if n == nil {
		return append(notes, "no spec.network: the container had only lo; a Pod always gets the cluster's network (a NetworkPolicy that denies all can isolate it)")
	}
	if n.Namespace != "" {
		notes = append(notes, fmt.Sprintf("spec.network.namespace (%s): the runtime makes and names the Pod's network namespace", n.Namespace))
	}
	for i, ifc := range n.Interfaces {
		what := ifc.Name
		if len(ifc.Addresses) > 0 {
			what += " " + strings.Join(ifc.Addresses, ",")
		}
		if ifc.Network != "" {
			what += " on network " + ifc.Network + " (its label and NetworkPolicy say who may reach the Pod; the names hutch's /etc/hosts gives resolve in a cluster only as Services)"
		} else if ifc.Host.Name != "" {
			what += ", host end " + ifc.Host.Name + " " + strings.Join(ifc.Host.Addresses, ",")
		}
		notes = append(notes, fmt.Sprintf("spec.network.interfaces[%d] (%s): a Pod has the one interface and address the cluster's network plugin gives it; reach it by its Service", i, what))
	}
	if len(n.Routes) > 0 {
		notes = append(notes, "spec.network.routes: the network plugin sets a Pod's routes")
	}
	return notes
}

// serviceName is the Service of a published port: NAME-PORT, and -udp for
// UDP; a Service's name must start with a letter (RFC 1035) and have at
// most 63 characters.
func serviceName(container string, p spec.Port) string {
	suffix := "-" + strconv.Itoa(p.HostPort)
	if protocol(p.Protocol) == "udp" {
		suffix += "-udp"
	}
	base := container
	if base[0] >= '0' && base[0] <= '9' {
		base = "svc-" + base
	}
	if len(base)+len(suffix) > 63 {
		base = strings.TrimRight(base[:63-len(suffix)], "-")
	}
	return base + suffix
}

// services are one Service per published port: the host port as the
// Service's port, sent to the container port of the Pod.
func services(sc *spec.Container) []kubeDoc {
	if sc.Spec.Network == nil {
		return nil
	}
	var docs []kubeDoc
	for _, p := range sc.Spec.Network.Ports {
		name := serviceName(sc.Metadata.Name, p)
		proto := kubeProtocol(p.Protocol)
		comment := []string{fmt.Sprintf("spec.network.ports: host port %d -> container port %d/%s of %s.", p.HostPort, p.ContainerPort, protocol(p.Protocol), sc.Metadata.Name),
			"Inside the cluster at " + name + ":" + strconv.Itoa(p.HostPort) + "; the Pod's hostPort publishes it on its node as hutch did;",
			"type: LoadBalancer (or an Ingress) would publish it beyond the cluster."}
		if p.HostIP != "" {
			comment = append(comment, "Not mapped: hostIP "+p.HostIP+" limits only the Pod's hostPort; a Service listens on its cluster address.")
		}
		docs = append(docs, kubeDoc{
			obj: kubeObject{APIVersion: "v1", Kind: "Service",
				Metadata: kubeMeta{Name: name, Labels: map[string]string{ContainerLabel: sc.Metadata.Name}},
				Spec: serviceSpec{Type: "ClusterIP", Selector: map[string]string{ContainerLabel: sc.Metadata.Name},
					Ports: []servicePort{{Name: strings.ToLower(proto) + "-" + strconv.Itoa(p.HostPort), Protocol: proto, Port: p.HostPort, TargetPort: p.ContainerPort}}}},
			comment: comment,
		})
	}
	return docs
}

// networkPolicies are one NetworkPolicy per hutch network: its Pods take
// traffic from the Pods of the network and from Pods of no other hutch
// network, as hutch drops only what one hutch bridge routes into another;
// and one per container on a network with published ports, open to all on
// those ports, as hutch's port forwards are.
func networkPolicies(m *spec.Manifest) []kubeDoc {
	var all []string
	for _, n := range m.Networks {
		all = append(all, n.Metadata.Name)
	}
	var docs []kubeDoc
	for _, n := range m.Networks {
		name := n.Metadata.Name
		var others []selectorExpr
		for _, o := range all {
			if o != name {
				others = append(others, selectorExpr{Key: NetworkLabelPrefix + o, Operator: "DoesNotExist"})
			}
		}
		from := []peer{{PodSelector: &labelSelector{MatchLabels: map[string]string{NetworkLabelPrefix + name: "true"}}}}
		if len(others) > 0 {
			from = append(from, peer{PodSelector: &labelSelector{MatchExpressions: others}})
		}
		var subnets []string
		for _, s := range n.Spec.Subnets {
			subnets = append(subnets, s.CIDR)
		}
		comment := []string{fmt.Sprintf("hutch network %s (%s, document %d).", name, n.Source.File, n.Source.Doc),
			"Not mapped:",
			fmt.Sprintf("  spec.subnets (%s), bridge, gateway, mtu: Pods get their addresses from the cluster's network plugin", strings.Join(subnets, ", "))}
		if n.Spec.NAT {
			comment = append(comment, "  spec.nat: a Pod's traffic leaves the cluster as the network plugin routes it (most masquerade it)")
		}
		comment = append(comment, "  traffic from outside the namespace: a NetworkPolicy's podSelector is of its own namespace")
		docs = append(docs, kubeDoc{
			obj: kubeObject{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy",
				Metadata: kubeMeta{Name: "network-" + name},
				Spec: networkPolicySpec{PodSelector: labelSelector{MatchLabels: map[string]string{NetworkLabelPrefix + name: "true"}},
					PolicyTypes: []string{"Ingress"}, Ingress: []ingressRule{{From: from}}}},
			comment: comment,
		})
	}
	for _, c := range m.Containers {
		if len(networksOf(c)) == 0 || len(c.Spec.Network.Ports) == 0 {
			continue
		}
		var ports []policyPort
		for _, p := range c.Spec.Network.Ports {
			ports = append(ports, policyPort{Protocol: kubeProtocol(p.Protocol), Port: p.ContainerPort})
		}
		docs = append(docs, kubeDoc{
			obj: kubeObject{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy",
				Metadata: kubeMeta{Name: c.Metadata.Name + "-published"},
				Spec: networkPolicySpec{PodSelector: labelSelector{MatchLabels: map[string]string{ContainerLabel: c.Metadata.Name}},
					PolicyTypes: []string{"Ingress"}, Ingress: []ingressRule{{Ports: ports}}}},
			comment: []string{fmt.Sprintf("The published ports of %s, open to every source as hutch's port forwards are.", c.Metadata.Name)},
		})
	}
	return docs
}

// unmappedLinks are the comment lines naming each kind: Link, which has no
// Kubernetes form.
func unmappedLinks(m *spec.Manifest) []string {
	var out []string
	for _, l := range m.Links {
		e := l.Spec.Endpoints
		out = append(out, fmt.Sprintf("Not mapped: link %s (%s/%s - %s/%s, %s, document %d): a Pod has one interface from the cluster's network; Pods reach each other through it and their Services.",
			l.Metadata.Name, e[0].Container, e[0].Interface, e[1].Container, e[1].Interface, l.Source.File, l.Source.Doc))
	}
	return out
}
