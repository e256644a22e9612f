package spec

// DefaultPath is the PATH of a container's process unless the manifest sets one.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultCapabilities is Docker's default capability set (moby's
// oci/caps/defaults.go): every other capability is dropped, bounding set
// included. Its mask is 0x00000000a80425fb.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// DefaultMaskedPaths are hidden from the container (/dev/null over files, an
// empty read-only tmpfs over folders), as Docker and runc do.
var DefaultMaskedPaths = []string{
	"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
	"/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
}

// DefaultReadonlyPaths are remounted read-only inside the container.
var DefaultReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// Defaults fills in every default of a container, in this one place:
// hostname = name, cwd /, a standard PATH, user 0:0, the network namespace
// named after the container, port forwards over tcp, Docker's seccomp
// profile, no_new_privs, the masked and read-only paths, the restart policy
// "never" and log rotation. The capability set is Docker's unless add/drop
// change it (plan resolves it). Validate runs before Defaults, on what the
// user wrote.
func Defaults(c *Container) {
	s := &c.Spec
	if s.Hostname == "" {
		s.Hostname = c.Metadata.Name
	}
	// With an image, the working folder, the user and PATH left out are
	// the image's: plan fills them from its config (and with these same
	// defaults where the image has none).
	image := s.Rootfs.Image != ""
	if s.Process.Cwd == "" && !image {
		s.Process.Cwd = "/"
	}
	if s.Process.User == "" && !image {
		s.Process.User = "0:0"
	}
	if s.Process.StopSignal == "" {
		s.Process.StopSignal = "SIGTERM"
	}
	if s.Process.StopTimeout == "" {
		s.Process.StopTimeout = "10s"
	}
	if s.Process.StartWindow == "" {
		s.Process.StartWindow = DefaultStartWindow
	}
	healthDefaults(s.HealthCheck)
	for i := range s.DependsOn {
		if s.DependsOn[i].Condition == "" {
			s.DependsOn[i].Condition = "started"
		}
	}
	hasPath := false
	for _, e := range s.Process.Env {
		if len(e) >= 5 && e[:5] == "PATH=" {
			hasPath = true
		}
	}
	if !hasPath && !image {
		s.Process.Env = append([]string{DefaultPath}, s.Process.Env...)
	}
	if s.Network != nil && s.Network.Namespace == "" {
		s.Network.Namespace = c.Metadata.Name
	}
	if s.Network != nil {
		for i := range s.Network.Ports {
			if s.Network.Ports[i].Protocol == "" {
				s.Network.Ports[i].Protocol = "tcp"
			}
		}
	}
	if s.Security.Seccomp == "" {
		s.Security.Seccomp = "default"
	}
	if s.Security.NoNewPrivileges == nil {
		t := true
		s.Security.NoNewPrivileges = &t
	}
	if s.Security.MaskedPaths == nil {
		s.Security.MaskedPaths = append([]string(nil), DefaultMaskedPaths...)
	}
	if s.Security.ReadonlyPaths == nil {
		s.Security.ReadonlyPaths = append([]string(nil), DefaultReadonlyPaths...)
	}
	if s.RestartPolicy == nil {
		s.RestartPolicy = &RestartPolicy{Policy: "never"}
	}
	if s.Logs == nil {
		s.Logs = &Logs{}
	}
	if s.Logs.MaxSize == "" {
		s.Logs.MaxSize = "10M"
	}
	if s.Logs.MaxFiles == 0 {
		s.Logs.MaxFiles = 3
	}
}

// DefaultStartWindow is how long apply watches a fresh process unless the
// manifest says otherwise: long enough for a process that cannot start
// (a port in use, a missing file) to have failed.
const DefaultStartWindow = "1s"

// healthDefaults fills in a health check's defaults: Docker's retries,
// a 10s interval once healthy, 250ms until then, a 3s timeout.
func healthDefaults(h *HealthCheck) {
	if h == nil {
		return
	}
	if h.Interval == "" {
		h.Interval = "10s"
	}
	if h.StartInterval == "" {
		h.StartInterval = "250ms"
	}
	if h.Timeout == "" {
		h.Timeout = "3s"
	}
	if h.Retries == 0 {
		h.Retries = 3
	}
	if h.StartPeriod == "" {
		h.StartPeriod = "0s"
	}
	if h.HTTP != nil && h.HTTP.Path == "" {
		h.HTTP.Path = "/"
	}
}
