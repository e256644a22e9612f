package spec

// APIVersion is the only apiVersion this hutch reads.
const APIVersion = "hutch/v1alpha1"

// KindContainer is the kind of a container document.
const KindContainer = "Container"

// Manifest is everything read from the -f arguments: the documents of each
// kind in the order they were read.
type Manifest struct {
	Containers []*Container
	Networks   []*NetworkDoc
	Links      []*LinkDoc
}

// Container is one `kind: Container` document: the YAML shape users write.
// Field names are the YAML keys; the yaml tags are the single source of the
// names that errors, the schema and the docs use.
type Container struct {
	// APIVersion is hutch/v1alpha1.
	APIVersion string `yaml:"apiVersion" validate:"required,eq=hutch/v1alpha1"`
	// Kind is Container.
	Kind string `yaml:"kind" validate:"required,eq=Container"`
	// Metadata names the container.
	Metadata Metadata `yaml:"metadata"`
	// Spec is what the container is made of.
	Spec ContainerSpec `yaml:"spec"`

	// Source says where the document came from; errors and `hutch inspect`
	// point there.
	Source Source `yaml:"-" validate:"-"`
}

// Metadata names a document.
type Metadata struct {
	// Name is the container's name, unique among all documents: a DNS label
	// (at most 63 lowercase letters, digits and '-'). It names the state
	// folder, the cgroup and, by default, the hostname and network namespace.
	Name string `yaml:"name" validate:"required,dnslabel"`
	// Labels are key: value pairs for people and tools, as Kubernetes
	// writes them (values at most 63 letters, digits, '-', '_' and '.').
	// hutch keeps them in the container's config.json annotations;
	// `hutch get -l key=value` selects containers by them.
	Labels map[string]string `yaml:"labels,omitempty" validate:"dive,keys,labelkey,endkeys,labelvalue"`
}

// ContainerSpec is what a container is made of.
type ContainerSpec struct {
	// Hostname is set in the container's UTS namespace (default: the name).
	Hostname string `yaml:"hostname,omitempty" validate:"omitempty,hostname,max=64"`
	// Rootfs is the recipe of the container's root filesystem.
	Rootfs Rootfs `yaml:"rootfs"`
	// Process is the container's first process.
	Process Process `yaml:"process"`
	// Network gives the container a network namespace with veth links to
	// the host; without it the container shares none and has only lo.
	Network *Network `yaml:"network,omitempty"`
	// Resources are the cgroup limits.
	Resources Resources `yaml:"resources,omitempty"`
	// Security loosens or tightens the secure defaults.
	Security Security `yaml:"security,omitempty"`
	// Mounts are bind mounts from the host and tmpfs mounts.
	Mounts []Mount `yaml:"mounts,omitempty" validate:"dive"`
	// RestartPolicy says when the process is started again (default never).
	RestartPolicy *RestartPolicy `yaml:"restartPolicy,omitempty"`
	// Logs says how the process's stdout and stderr are kept.
	Logs *Logs `yaml:"logs,omitempty"`
	// Sysctls are kernel parameters of the container's network namespace
	// (net.*, from the list of those the kernel keeps per namespace), set
	// before the process starts: net.ipv4.ip_forward: "1" makes a router.
	Sysctls map[string]string `yaml:"sysctls,omitempty" validate:"dive,keys,sysctl,endkeys,max=255"`
	// HealthCheck is how the supervisor tells that the process serves: an
	// HTTP request, a TCP connect or a command inside the container.
	HealthCheck *HealthCheck `yaml:"healthCheck,omitempty"`
	// DependsOn are the containers of the same manifest that must be
	// started (or healthy) before this one starts; when one of them is
	// started again, so is this one.
	DependsOn []Dependency `yaml:"dependsOn,omitempty" validate:"dive"`
}

// HealthCheck is one of http, tcp or exec, run by the container's
// supervisor every interval. The container is healthy after one check
// passes, unhealthy after retries checks in a row fail (failures during
// startPeriod do not count), and starting until either.
type HealthCheck struct {
	// HTTP passes when GET path on the container's loopback at port
	// answers with a status of 200-399.
	HTTP *HTTPCheck `yaml:"http,omitempty"`
	// TCP passes when a connection to the container's loopback at port is
	// accepted.
	TCP *TCPCheck `yaml:"tcp,omitempty"`
	// Exec passes when the command, run inside the container's namespaces
	// and cgroup with its process's user and security settings, exits 0.
	Exec []string `yaml:"exec,omitempty" validate:"omitempty,min=1,dive,required"`
	// Interval is the time between two checks once the first one passed
	// (default 10s).
	Interval string `yaml:"interval,omitempty" validate:"omitempty,duration"`
	// StartInterval is the time between two checks until the first one
	// passes (default 250ms), so that a fresh container is seen healthy
	// soon after it is.
	StartInterval string `yaml:"startInterval,omitempty" validate:"omitempty,duration"`
	// Timeout is how long one check may take (default 3s).
	Timeout string `yaml:"timeout,omitempty" validate:"omitempty,duration"`
	// Retries is how many checks in a row must fail to be unhealthy
	// (default 3).
	Retries int `yaml:"retries,omitempty" validate:"omitempty,min=1,max=1000"`
	// StartPeriod is a grace time after each start in which failures do not
	// count (default 0s).
	StartPeriod string `yaml:"startPeriod,omitempty" validate:"omitempty,duration0"`
}

// HTTPCheck is an HTTP GET inside the container's network namespace.
type HTTPCheck struct {
	// Port is the port on the container's 127.0.0.1, 1-65535.
	Port int `yaml:"port" validate:"min=1,max=65535"`
	// Path is the request's path (default /).
	Path string `yaml:"path,omitempty" validate:"omitempty,httppath"`
}

// TCPCheck is a TCP connect inside the container's network namespace.
type TCPCheck struct {
	// Port is the port on the container's 127.0.0.1, 1-65535.
	Port int `yaml:"port" validate:"min=1,max=65535"`
}

// Dependency is a container that must be up before this one starts.
type Dependency struct {
	// Name is a container of the same manifest.
	Name string `yaml:"name" validate:"required,dnslabel"`
	// Condition is started (the default: its process runs past its start
	// window) or healthy (its health check passed).
	Condition string `yaml:"condition,omitempty" validate:"omitempty,oneof=started healthy"`
}

// Rootfs is the recipe of the root filesystem, built from host files, on
// top of an image's layers when Image is given.
type Rootfs struct {
	// Image is an OCI image the rootfs starts from: oci-layout:PATH[:tag]
	// (an OCI image layout folder, the image of that tag) or
	// docker-archive:FILE.tar (what docker save and podman save write). A
	// relative PATH is relative to the manifest file's folder. Its layers
	// are unpacked into hutch's layer cache; binaries, python, copy, files
	// and dirs make one more layer above them. The image's entrypoint and
	// cmd, env, working folder and user are the process's defaults.
	Image string `yaml:"image,omitempty" validate:"omitempty,imageref"`
	// Binaries are host executables (absolute paths or names looked up on
	// PATH) copied to the same path with every shared library they load.
	Binaries []string `yaml:"binaries,omitempty" validate:"dive,required,binary"`
	// Python names a python interpreter (absolute or on PATH). hutch runs it
	// once to ask for sys.executable and its standard library folders, copies
	// the real ELF interpreter, its libraries and the standard library, and
	// makes the name resolvable on the container's PATH.
	Python string `yaml:"python,omitempty" validate:"omitempty,binary"`
	// Copy copies host files or folders into the rootfs.
	Copy []CopyItem `yaml:"copy,omitempty" validate:"dive"`
	// Files are written with the content given.
	Files []File `yaml:"files,omitempty" validate:"dive"`
	// Dirs are empty folders to create.
	Dirs []Dir `yaml:"dirs,omitempty" validate:"dive"`
	// ReadOnly mounts the container's root read-only.
	ReadOnly bool `yaml:"readOnly,omitempty"`
}

// CopyItem copies From on the host to To in the rootfs (To defaults to From).
type CopyItem struct {
	// From is the absolute path of a host file or folder.
	From string `yaml:"from" validate:"required,abspath"`
	// To is where it goes in the rootfs (default: the same path).
	To string `yaml:"to,omitempty" validate:"omitempty,abspath"`
}

// File is an inline file.
type File struct {
	// Path is the file's absolute path in the rootfs.
	Path string `yaml:"path" validate:"required,abspath"`
	// Mode is the octal file mode, quoted: "0644" (the default) or "0755".
	Mode string `yaml:"mode,omitempty" validate:"omitempty,filemode"`
	// Content is the file's content (a block scalar `|` keeps newlines).
	Content string `yaml:"content"`
}

// Dir is an empty folder.
type Dir struct {
	// Path is the folder's absolute path in the rootfs.
	Path string `yaml:"path" validate:"required,abspath"`
	// Mode is the octal mode, quoted: "0755" (the default).
	Mode string `yaml:"mode,omitempty" validate:"omitempty,filemode"`
}

// Process is the container's first process.
type Process struct {
	// Args are the program and its arguments; the program is looked up on
	// the container's PATH unless it is a path. Required unless
	// rootfs.image is given: then empty args run the image's entrypoint
	// and cmd.
	Args []string `yaml:"args,omitempty" validate:"dive,required"`
	// Env entries are NAME=value; PATH gets a standard value unless set.
	// With rootfs.image the image's env comes first and an entry here
	// replaces the image's of the same NAME.
	Env []string `yaml:"env,omitempty" validate:"dive,envvar"`
	// Cwd is the working folder (default: the image's, else /).
	Cwd string `yaml:"cwd,omitempty" validate:"omitempty,abspath"`
	// User is uid or uid:gid, numeric (default: the image's user, else
	// 0:0).
	User string `yaml:"user,omitempty" validate:"omitempty,uidgid"`
	// AdditionalGids are supplementary groups.
	AdditionalGids []uint32 `yaml:"additionalGids,omitempty"`
	// Rlimits are setrlimit(2) limits of the process.
	Rlimits []Rlimit `yaml:"rlimits,omitempty" validate:"dive"`
	// StopSignal is sent on stop (default SIGTERM); after StopTimeout
	// (default 10s) every process of the container gets SIGKILL.
	StopSignal string `yaml:"stopSignal,omitempty" validate:"omitempty,signal"`
	// StopTimeout is how long the process has to exit after StopSignal,
	// such as 10s or 1m30s (default 10s).
	StopTimeout string `yaml:"stopTimeout,omitempty" validate:"omitempty,duration"`
	// StartWindow is how long apply watches the process after starting it
	// (default 1s, or until the health check passes): a process that exits
	// in it fails the apply with its exit status and log tail. 0s turns the
	// watch off.
	StartWindow string `yaml:"startWindow,omitempty" validate:"omitempty,duration0"`
}

// Rlimit is one resource limit, as setrlimit(2) names it.
type Rlimit struct {
	// Type is the resource: RLIMIT_NOFILE, or nofile (any case, with or
	// without RLIMIT_).
	Type string `yaml:"type" validate:"required,rlimit"`
	// Soft is the limit the process meets; at most Hard.
	Soft uint64 `yaml:"soft"`
	// Hard is the ceiling up to which the process may raise Soft.
	Hard uint64 `yaml:"hard"`
}

// Network is the container's network namespace and its links.
type Network struct {
	// Namespace is the name of the network namespace, as `ip netns list`
	// shows it (default: the container's name).
	Namespace string `yaml:"namespace,omitempty" validate:"omitempty,netnsname"`
	// Interfaces are veth pairs between the host and the container.
	Interfaces []Interface `yaml:"interfaces,omitempty" validate:"dive"`
	// Routes are static routes inside the container.
	Routes []Route `yaml:"routes,omitempty" validate:"dive"`
	// Ports forward a port of the host to a port of the container.
	Ports []Port `yaml:"ports,omitempty" validate:"dive"`
}

// Port forwards HostPort on the host (on HostIP, or every address) to
// ContainerPort on the container's first address of the same family.
type Port struct {
	// HostPort is the port on the host, 1-65535.
	HostPort int `yaml:"hostPort" validate:"min=1,max=65535"`
	// ContainerPort is the port in the container, 1-65535.
	ContainerPort int `yaml:"containerPort" validate:"min=1,max=65535"`
	// Protocol is tcp (the default) or udp.
	Protocol string `yaml:"protocol,omitempty" validate:"omitempty,oneof=tcp udp"`
	// HostIP limits the forward to one address of the host.
	HostIP string `yaml:"hostIP,omitempty" validate:"omitempty,ip"`
}

// Interface is a veth pair: Name is the end inside the container, Host the
// end left on the host, or the end plugged into the bridge of Network.
type Interface struct {
	// Name is the interface's name inside the container: at most 15 bytes
	// (the kernel's IFNAMSIZ), no '/', ':' or whitespace, not lo.
	Name string `yaml:"name" validate:"required,ifname"`
	// Addresses are IPv4 or IPv6 addresses with their prefix length, such
	// as 172.16.0.2/24, in the subnet of the host end's address or of the
	// network. On a network they are optional: without one of a subnet's
	// family the container gets the lowest free address of that subnet,
	// kept for it across applies.
	Addresses []string `yaml:"addresses,omitempty" validate:"dive,cidr_addr"`
	// MTU of both ends (default the kernel's, 1500).
	MTU int `yaml:"mtu,omitempty" validate:"omitempty,min=68,max=65535"`
	// MAC is the container end's hardware address (default random).
	MAC string `yaml:"mac,omitempty" validate:"omitempty,mac"`
	// Host is the end left on the host (not with Network).
	Host HostEnd `yaml:"host,omitempty"`
	// Network is the name of a `kind: Network` to attach to (not with
	// Host): the other end is plugged into its bridge, with a name hutch
	// chooses.
	Network string `yaml:"network,omitempty" validate:"omitempty,dnslabel"`
	// DefaultRoute adds a default route inside the container via the host
	// end's first address of each family, or the network's gateways.
	DefaultRoute bool `yaml:"defaultRoute,omitempty"`
}

// HostEnd is the host's end of a veth pair.
type HostEnd struct {
	// Name is the interface's name on the host, unique among all
	// documents: at most 15 bytes, no '/', ':' or whitespace.
	Name string `yaml:"name" validate:"omitempty,ifname"`
	// Addresses are the host end's addresses with their prefix length,
	// such as 172.16.0.1/24.
	Addresses []string `yaml:"addresses,omitempty" validate:"dive,cidr_addr"`
	// MAC is the host end's hardware address (default random).
	MAC string `yaml:"mac,omitempty" validate:"omitempty,mac"`
}

// Route is a static route inside the container.
type Route struct {
	// To is a destination prefix (host bits zero, such as 10.0.0.0/8) or
	// "default".
	To string `yaml:"to" validate:"required,routedst"`
	// Via is the gateway, of the family of To, in a subnet of one of the
	// container's interfaces.
	Via string `yaml:"via,omitempty" validate:"omitempty,ip"`
	// Dev is the container's interface the route goes out of.
	Dev string `yaml:"dev,omitempty" validate:"omitempty,ifname"`
	// Metric is the route's priority: lower wins.
	Metric int `yaml:"metric,omitempty" validate:"min=0"`
}

// Resources are the container's cgroup limits.
type Resources struct {
	// Memory is the limit of memory use: bytes, or with K, M, G, T (powers
	// of 1024, as the kernel and docker read them; Ki, Mi, Gi, Ti mean the
	// same): 50M is 52428800 bytes, as the seed's `echo 50M >
	// memory.limit_in_bytes` gives. At least 4M; 0 means no limit.
	Memory string `yaml:"memory,omitempty" validate:"omitempty,memory"`
	// MemorySwap is memory plus swap (docker's --memory-swap), written as
	// Memory is (K, M, G, T are powers of 1024): at least Memory, equal to
	// it for no swap, "-1" for unlimited swap.
	MemorySwap string `yaml:"memorySwap,omitempty" validate:"omitempty,memoryswap"`
	// CPU in cores: "1", "0.5", "250m". Sets quota = cores x period. Not
	// with CPUQuota.
	CPU string `yaml:"cpu,omitempty" validate:"omitempty,cpu"`
	// CPUQuota is the CPU time in microseconds the container may use in
	// each period, as cpu.cfs_quota_us (v1) or cpu.max (v2) take it; at
	// least 1000. Not with CPU.
	CPUQuota int64 `yaml:"cpuQuota,omitempty" validate:"omitempty,min=1000"`
	// CPUPeriod is the length of a period in microseconds, as
	// cpu.cfs_period_us takes it: 1000-1000000 (default 100000).
	CPUPeriod uint64 `yaml:"cpuPeriod,omitempty" validate:"omitempty,min=1000,max=1000000"`
	// CPUWeight is the relative share of CPU time, 1-10000 (default 100).
	CPUWeight uint64 `yaml:"cpuWeight,omitempty" validate:"omitempty,min=1,max=10000"`
	// Pids is the most processes and threads the container may have.
	Pids int64 `yaml:"pids,omitempty" validate:"omitempty,min=1"`
	// Cpuset pins the container to CPUs and memory nodes.
	Cpuset Cpuset `yaml:"cpuset,omitempty"`
}

// Cpuset pins the container to CPUs and memory nodes ("0-1,3").
type Cpuset struct {
	// Cpus are the CPUs the container runs on, as cpuset.cpus: "0-1,3".
	Cpus string `yaml:"cpus,omitempty" validate:"omitempty,cpulist"`
	// Mems are the memory nodes it allocates from, as cpuset.mems: "0".
	Mems string `yaml:"mems,omitempty" validate:"omitempty,cpulist"`
}

// Security loosens or tightens the defaults (Docker's capability set,
// Docker's seccomp profile, no_new_privs, masked and read-only /proc paths).
type Security struct {
	// Capabilities are added to or dropped from Docker's default set.
	Capabilities Capabilities `yaml:"capabilities,omitempty"`
	// Seccomp is "default", "unconfined" or the absolute path of a profile
	// in Docker's JSON format.
	Seccomp string `yaml:"seccomp,omitempty" validate:"omitempty,seccomp"`
	// NoNewPrivileges defaults to true.
	NoNewPrivileges *bool `yaml:"noNewPrivileges,omitempty"`
	// MaskedPaths are hidden from the container; they replace the defaults
	// when given.
	MaskedPaths []string `yaml:"maskedPaths,omitempty" validate:"dive,abspath"`
	// ReadonlyPaths are remounted read-only; they replace the defaults
	// when given.
	ReadonlyPaths []string `yaml:"readonlyPaths,omitempty" validate:"dive,abspath"`
	// UserNamespace maps container ids to host ids (default: no user
	// namespace, root inside is root outside).
	UserNamespace *UserNamespace `yaml:"userNamespace,omitempty"`
}

// Capabilities are added to or dropped from the default set. "ALL" is
// accepted in drop (then add builds the set from nothing).
type Capabilities struct {
	// Add are capabilities to add: NET_ADMIN, net_admin or CAP_NET_ADMIN.
	Add []string `yaml:"add,omitempty" validate:"dive,capability"`
	// Drop are capabilities to drop, or ALL.
	Drop []string `yaml:"drop,omitempty" validate:"dive,capdrop"`
}

// UserNamespace maps container ids to host ids.
type UserNamespace struct {
	// UIDMappings are written to /proc/PID/uid_map; ranges are disjoint.
	UIDMappings []IDMapping `yaml:"uidMappings" validate:"required,min=1,dive"`
	// GIDMappings are written to /proc/PID/gid_map; ranges are disjoint.
	GIDMappings []IDMapping `yaml:"gidMappings" validate:"required,min=1,dive"`
}

// IDMapping maps Size ids from ContainerID on to HostID.
type IDMapping struct {
	// ContainerID is the first id inside the container.
	ContainerID uint32 `yaml:"containerID"`
	// HostID is the id it is on the host.
	HostID uint32 `yaml:"hostID"`
	// Size is how many consecutive ids are mapped, at least 1.
	Size uint32 `yaml:"size" validate:"min=1"`
}

// Mount is a bind mount from the host or a tmpfs.
type Mount struct {
	// Type is bind or tmpfs.
	Type string `yaml:"type" validate:"required,oneof=bind tmpfs"`
	// Source is the host path a bind mount shows; a tmpfs has none.
	Source string `yaml:"source,omitempty" validate:"omitempty,abspath"`
	// Destination is where it is mounted in the container.
	Destination string `yaml:"destination" validate:"required,abspath"`
	// ReadOnly mounts it read-only.
	ReadOnly bool `yaml:"readOnly,omitempty"`
	// Size of a tmpfs, written as memory is (K, M, G, T are powers of
	// 1024: 64M is 67108864 bytes).
	Size string `yaml:"size,omitempty" validate:"omitempty,size"`
	// Mode of a tmpfs root, octal.
	Mode string `yaml:"mode,omitempty" validate:"omitempty,filemode"`
}

// RestartPolicy says when the supervisor starts the process again.
type RestartPolicy struct {
	// Policy is never, on-failure (a non-zero exit) or always.
	Policy string `yaml:"policy" validate:"required,oneof=never on-failure always"`
	// MaxRetries bounds on-failure restarts (0: no bound).
	MaxRetries int `yaml:"maxRetries,omitempty" validate:"min=0"`
}

// Logs says how stdout and stderr are kept.
type Logs struct {
	// MaxSize is the size at which the log is rotated, written as memory
	// is (K, M, G, T are powers of 1024; default 10M).
	MaxSize string `yaml:"maxSize,omitempty" validate:"omitempty,size"`
	// MaxFiles is how many rotated logs are kept, 1-100 (default 3).
	MaxFiles int `yaml:"maxFiles,omitempty" validate:"omitempty,min=1,max=100"`
}

// Source is where a document came from.
type Source struct {
	File string // path as given, or "<stdin>"
	Doc  int    // index of the document in the file, from 0
	Line int    // line of the document's first key
	// pos maps a field path ("spec.network.interfaces[0].name") to the
	// position of its value.
	pos map[string]Pos
}

// Pos is a position in a file, both from 1.
type Pos struct {
	Line, Col int
}

// Pos returns the position of the value at a field path, or of its nearest
// ancestor that has one.
func (s Source) Pos(path string) Pos {
	for {
		if p, ok := s.pos[path]; ok {
			return p
		}
		i := lastSep(path)
		if i < 0 {
			return Pos{Line: s.Line, Col: 1}
		}
		path = path[:i]
	}
}

// lastSep is the index of the last "." or "[" of a field path.
func lastSep(path string) int {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' || path[i] == '[' {
			return i
		}
	}
	return -1
}
