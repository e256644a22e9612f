package plan

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Kind names a kind of host resource. Each kind has exactly one driver.
type Kind string

// The kinds of host resources hutch manages, in the order a container needs them.
const (
	KindRootfs  Kind = "rootfs"
	KindNetns   Kind = "netns"
	KindVeth    Kind = "veth"
	KindAddress Kind = "address"
	KindRoute   Kind = "route"
	KindCgroup  Kind = "cgroup"
	KindProcess Kind = "process"
)

// Resource is one host object hutch owns: a typed value with a stable ID, the
// container it belongs to, and the IDs of the resources it needs first.
// Resources are plain values: they serialise to JSON (the state store keeps
// them) and decode again with DecodeResource.
type Resource interface {
	ID() string
	Kind() Kind
	Owner() string
	Deps() []string
}

// Carried is a resource the kernel removes by itself when one of the
// resources it depends on goes: a veth pair goes with the network namespace
// its peer end lives in (cleanup_net unregisters every device inside, and a
// veth end takes its peer along), an address or a route with its link.
// CarriedBy names those carriers; each is among Deps. When a carrier is torn
// down in the same run, the carried resource's teardown runs after it
// instead of before, and only has to confirm that the kernel removed it
// (see Order). Removing a veth by RTM_DELLINK costs a full unregister with
// its RCU grace periods (20-40 ms here, one pair at a time under the RTNL
// lock), where the namespace's cleanup removes every pair of a batch of
// namespaces at once.
type Carried interface {
	CarriedBy() []string
}

// CarriedBy returns the IDs of the resources whose removal takes r along,
// or nil when r is not Carried.
func CarriedBy(r Resource) []string {
	if c, ok := r.(Carried); ok {
		return c.CarriedBy()
	}
	return nil
}

// HostNetns is the Netns value used for objects in the host's own network
// namespace (the namespace hutch runs in).
const HostNetns = ""

// Netns is a named network namespace, bind-mounted at NetnsDir/Name so that
// iproute2 (`ip netns list`, `ip netns exec`) sees it.
type Netns struct {
	Container string `json:"container"`
	Name      string `json:"name"`
}

func (n *Netns) ID() string     { return NetnsID(n.Name) }
func (n *Netns) Kind() Kind     { return KindNetns }
func (n *Netns) Owner() string  { return n.Container }
func (n *Netns) Deps() []string { return nil }

// NetnsID is the resource ID of the named network namespace.
func NetnsID(name string) string { return "netns/" + name }

// LinkEnd is one end of a veth pair. MAC and MTU are zero when the kernel
// may choose.
type LinkEnd struct {
	Name string `json:"name"`
	MAC  string `json:"mac,omitempty"`
	MTU  int    `json:"mtu,omitempty"`
	// Down is set only in an observed value, for an end that is not up
	// (IFF_UP clear); hutch always wants both ends up.
	Down bool `json:"down,omitempty"`
}

// Veth is a veth pair: Host stays in the host's network namespace, Peer is
// moved into the named namespace Netns. Both ends are set up.
type Veth struct {
	Container string  `json:"container"`
	Host      LinkEnd `json:"host"`
	Peer      LinkEnd `json:"peer"`
	Netns     string  `json:"netns"`
	// Bridge is the bridge the host end is a port of (IFLA_MASTER, `ip
	// link set H master BR`), "" for none: a container attached to a
	// hutch network.
	Bridge string `json:"bridge,omitempty"`
}

func (v *Veth) ID() string    { return VethID(v.Host.Name) }
func (v *Veth) Kind() Kind    { return KindVeth }
func (v *Veth) Owner() string { return v.Container }
func (v *Veth) Deps() []string {
	if v.Bridge != "" {
		return []string{NetnsID(v.Netns), BridgeID(v.Bridge)}
	}
	return []string{NetnsID(v.Netns)}
}

// CarriedBy: the peer end lives in Netns, and goes with it, taking the host end along.
func (v *Veth) CarriedBy() []string { return []string{NetnsID(v.Netns)} }

// VethID is the resource ID of the veth pair whose host end is hostName.
func VethID(hostName string) string { return "veth/" + hostName }

// Address is one IP address with its prefix length (CIDR notation,
// "172.16.0.2/24" or "fd00::2/64") on the link Link, which lives in the
// network namespace Netns (HostNetns for the host). Veth is the ID of the veth
// pair the link belongs to.
type Address struct {
	Container string `json:"container"`
	Netns     string `json:"netns"`
	Link      string `json:"link"`
	CIDR      string `json:"cidr"`
	Veth      string `json:"veth"`
	// Needs are addresses made first. A host end's address comes after
	// the container end's: it adds the host's route to the container, and
	// a client already trying (a poll during apply) would otherwise send
	// its first packet while the container's end cannot answer ARP yet;
	// the neighbour entry then waits a whole retrans_time (1 s) to ask
	// again.
	Needs []string `json:"needs,omitempty"`
	// Peer is, on a host end's address, the container's end of the veth
	// and its addresses of this family. Once the address is made, the
	// host's neighbour entries for them are set from the peer's MAC
	// address, which hutch knows: the first packet then needs no ARP, and
	// an entry that a client's early try left waiting for an answer
	// (INCOMPLETE, asked again only after retrans_time, 1 s) is resolved
	// at once, its queued packets sent.
	Peer *AddressPeer `json:"peer,omitempty"`
}

// AddressPeer is the other end of a veth: its namespace, interface and
// IPs.
type AddressPeer struct {
	Netns string   `json:"netns"`
	Link  string   `json:"link"`
	IPs   []string `json:"ips"`
}

func (a *Address) ID() string {
	return "address/" + nsLabel(a.Netns) + "/" + a.Link + "/" + a.CIDR
}
func (a *Address) Kind() Kind     { return KindAddress }
func (a *Address) Owner() string  { return a.Container }
func (a *Address) Deps() []string { return append([]string{a.Veth}, a.Needs...) }

// CarriedBy: an address goes with its link.
func (a *Address) CarriedBy() []string { return []string{a.Veth} }

// Route is a route in the main table of the network namespace Netns: traffic
// to Dst ("0.0.0.0/0" and "::/0" for the default routes) goes through the
// device Dev, via the gateway Via when it is set. Needs lists the resource IDs
// that must exist first (the link's veth and the address that makes Via
// reachable).
type Route struct {
	Container string   `json:"container"`
	Netns     string   `json:"netns"`
	Dst       string   `json:"dst"`
	Via       string   `json:"via,omitempty"`
	Dev       string   `json:"dev"`
	Metric    int      `json:"metric,omitempty"`
	Needs     []string `json:"needs"`
}

func (r *Route) ID() string     { return "route/" + nsLabel(r.Netns) + "/" + r.Dst }
func (r *Route) Kind() Kind     { return KindRoute }
func (r *Route) Owner() string  { return r.Container }
func (r *Route) Deps() []string { return r.Needs }

// CarriedBy: a route goes with its device, the veth among Needs, or with
// the namespace it is in (a route on lo needs the namespace).
func (r *Route) CarriedBy() []string {
	var ids []string
	for _, id := range r.Needs {
		if strings.HasPrefix(id, string(KindVeth)+"/") || strings.HasPrefix(id, string(KindNetns)+"/") {
			ids = append(ids, id)
		}
	}
	return ids
}

// Cgroup is the container's control group: Path is relative to the root of
// each hierarchy (v1: every controller's mount; v2: the unified mount), for
// example "hutch/webserver". Zero values mean "no limit / kernel default",
// except where a field says otherwise.
type Cgroup struct {
	Container string       `json:"container"`
	Path      string       `json:"path"`
	Memory    CgroupMemory `json:"memory"`
	CPU       CgroupCPU    `json:"cpu"`
	Pids      int64        `json:"pids,omitempty"` // pids.max; 0 = max
}

// CgroupMemory holds memory limits in bytes.
type CgroupMemory struct {
	Limit int64 `json:"limit,omitempty" show:"bytes"` // memory.limit_in_bytes / memory.max; 0 = unlimited
	// Swap is memory plus swap, as OCI's memory.swap and v1's
	// memory.memsw.limit_in_bytes read it: 0 = the kernel default, -1 =
	// unlimited, equal to Limit = no swap.
	Swap int64 `json:"swap,omitempty" show:"bytes"`
}

// CgroupCPU holds CPU bandwidth and placement.
type CgroupCPU struct {
	Quota  int64  `json:"quota,omitempty"`  // µs per Period; 0 = unlimited
	Period uint64 `json:"period,omitempty"` // µs; 0 = the kernel default (100000)
	// Weight is the v2 cpu.weight (1-10000, default 100); on v1 it is written as
	// cpu.shares converted the way runc converts it. 0 = the default.
	Weight uint64 `json:"weight,omitempty"`
	Cpus   string `json:"cpus,omitempty"` // cpuset.cpus, e.g. "0-1"
	Mems   string `json:"mems,omitempty"` // cpuset.mems
}

func (c *Cgroup) ID() string     { return CgroupID(c.Container) }
func (c *Cgroup) Kind() Kind     { return KindCgroup }
func (c *Cgroup) Owner() string  { return c.Container }
func (c *Cgroup) Deps() []string { return nil }

// CgroupID is the resource ID of a container's cgroup.
func CgroupID(container string) string { return "cgroup/" + container }

// Rootfs is the recipe of a container's root filesystem. drivers/fs resolves
// it on the host (binaries on PATH, their ELF dependency closure, the python
// interpreter's standard library), builds a content-addressed layer from it,
// unpacks the layers of its image (if any) into the same cache, and mounts
// an overlay for the container at Bundle/rootfs.
type Rootfs struct {
	Container string `json:"container"`
	// Bundle is the container's OCI bundle folder; the rootfs is mounted at
	// Bundle/rootfs, which config.json's root.path names.
	Bundle string `json:"bundle"`
	// Binaries are host executables, absolute or looked up on PATH, copied to
	// the same path in the rootfs with every shared library they need.
	Binaries []string `json:"binaries,omitempty"`
	// Python is a python interpreter (absolute or on PATH); hutch asks it for
	// sys.executable and its standard library folders and copies them.
	Python string       `json:"python,omitempty"`
	Copies []Copy       `json:"copies,omitempty"`
	Files  []InlineFile `json:"files,omitempty"`
	// Dirs are empty folders to create, mount points included (/proc, /sys,
	// /dev, /tmp): always plain folders, never symlinks.
	Dirs     []Dir `json:"dirs,omitempty"`
	ReadOnly bool  `json:"readOnly,omitempty"`
	// Image is the image whose layers lie below the recipe's layer (the
	// overlay's lowerdir is the recipe's layer, then the image's from
	// the top down), nil for a rootfs of host files only.
	Image *RootfsImage `json:"image,omitempty"`
	// Layer is the digest ("sha256:<hex>") of the layer the recipe gives
	// with the host's files as they are now: drivers/fs sets it when it
	// observes (on the desired value) and reads it back from the overlay's
	// lowerdir (on the observed one). plan.Build leaves it empty.
	Layer string `json:"layer,omitempty"`
}

// Copy copies a host file or folder From to To inside the rootfs.
type Copy struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// InlineFile is a file whose content the manifest gives.
type InlineFile struct {
	Path    string `json:"path"`
	Mode    uint32 `json:"mode"`
	Content string `json:"content"`
	Digest  string `json:"digest"` // "sha256:<hex>" of Content
}

// Dir is an empty folder with its mode.
type Dir struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
}

func (r *Rootfs) ID() string     { return RootfsID(r.Container) }
func (r *Rootfs) Kind() Kind     { return KindRootfs }
func (r *Rootfs) Owner() string  { return r.Container }
func (r *Rootfs) Deps() []string { return nil }

// RootfsID is the resource ID of a container's rootfs.
func RootfsID(container string) string { return "rootfs/" + container }

// Process is the container's first process under its supervisor. The OCI
// configuration it runs is the container's Spec (bundle config.json); Digest
// covers everything that forces a restart when it changes (the OCI config and
// the rootfs recipe), so two Process values with equal Digest need no restart.
type Process struct {
	Container string        `json:"container"`
	Bundle    string        `json:"bundle"` // folder holding config.json and rootfs/
	Digest    string        `json:"digest"`
	Restart   RestartPolicy `json:"restart"`
	// StopSignal is sent first on stop; after StopTimeout the whole cgroup
	// gets SIGKILL.
	StopSignal  string        `json:"stopSignal"`
	StopTimeout time.Duration `json:"stopTimeout"`
	Logs        LogPolicy     `json:"logs"`
	// StartWindow is how long the driver watches a fresh process (0: not
	// at all); one that exits in it failed to start.
	StartWindow time.Duration `json:"startWindow"`
	// Health is the check the supervisor runs, nil for none.
	Health *HealthCheck `json:"health,omitempty"`
	// After are the containers (dependsOn) to wait for before starting.
	// Each one's process is also in Needs, so it is started first; one with
	// condition healthy is waited for at the start.
	After []Dependency `json:"after,omitempty"`
	Needs []string     `json:"needs"` // rootfs, cgroup, netns and network setup, the processes of After
}

// HealthCheck is a process's health check (spec.healthCheck), with its
// defaults filled in and durations parsed. Kind is "http", "tcp" or
// "exec"; Port and Path go with http and tcp, Command with exec.
type HealthCheck struct {
	Kind          string        `json:"kind"`
	Port          int           `json:"port,omitempty"`
	Path          string        `json:"path,omitempty"`
	Command       []string      `json:"command,omitempty"`
	Interval      time.Duration `json:"interval"`
	StartInterval time.Duration `json:"startInterval"`
	Timeout       time.Duration `json:"timeout"`
	Retries       int           `json:"retries"`
	StartPeriod   time.Duration `json:"startPeriod"`
}

// Dependency is a container a process waits for: started (its own process
// step done) or healthy (its health check passed).
type Dependency struct {
	Container string `json:"container"`
	Bundle    string `json:"bundle"`
	Condition string `json:"condition"`
}

// RestartPolicy says when the supervisor starts the process again:
// "never", "on-failure" (at most MaxRetries times, 0 = no limit) or "always",
// with exponential back-off.
type RestartPolicy struct {
	Policy     string `json:"policy"`
	MaxRetries int    `json:"maxRetries,omitempty"`
}

// LogPolicy says how stdout and stderr are kept: rotated at MaxSize bytes,
// keeping MaxFiles files.
type LogPolicy struct {
	MaxSize  int64 `json:"maxSize" show:"bytes"`
	MaxFiles int   `json:"maxFiles"`
}

func (p *Process) ID() string     { return ProcessID(p.Container) }
func (p *Process) Kind() Kind     { return KindProcess }
func (p *Process) Owner() string  { return p.Container }
func (p *Process) Deps() []string { return p.Needs }

// ProcessID is the resource ID of a container's process.
func ProcessID(container string) string { return "process/" + container }

func nsLabel(netns string) string {
	if netns == HostNetns {
		return "host"
	}
	return netns
}

// DecodeResource decodes the JSON form of a resource of the given kind, as the
// state store keeps it.
func DecodeResource(kind Kind, data []byte) (Resource, error) {
	var r Resource
	switch kind {
	case KindRootfs:
		r = &Rootfs{}
	case KindNetns:
		r = &Netns{}
	case KindVeth:
		r = &Veth{}
	case KindAddress:
		r = &Address{}
	case KindRoute:
		r = &Route{}
	case KindCgroup:
		r = &Cgroup{}
	case KindProcess:
		r = &Process{}
	case KindBridge:
		r = &Bridge{}
	case KindNftRule:
		r = &NftRule{}
	case KindSysctl:
		r = &Sysctl{}
	case KindFile:
		r = &File{}
	case KindLink:
		r = &Link{}
	default:
		return nil, fmt.Errorf("decode resource: unknown kind %q", kind)
	}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("decode %s resource: %w", kind, err)
	}
	return r, nil
}
