//go:build linux

package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"hutch/internal/scan"
	"hutch/plan"
)

// Finding what hutch owns without the state store. A supervisor records
// itself in its bundle's process.json; when that file is gone (the bundle
// folder was removed under it), the supervisor still says which bundle it
// serves: the driver starts it with _HUTCH_STAGE=supervisor and
// _HUTCH_BUNDLE=<stateRoot>/containers/<container> in its environment,
// which /proc/PID/environ keeps as it was at execve(2) whatever the process
// does later. The process name ("hutch-supervisor NAME") only picks the
// processes whose environment is read.
//
// A name and an environment are what anyone chooses for their own
// processes: a local user can start a process called hutch-supervisor with
// that environment, and so can a container's root. So a process is only
// believed when two things hold that neither can choose: it runs as root
// (the effective uid on the Uid line of /proc/PID/status is 0, which no
// other user's process has), and it executes hutch's own binary
// (stat(2) of /proc/PID/exe, which the kernel resolves to the file the
// process executes, gives the device and inode of the binary this hutch
// runs; a container's processes execute files of their rootfs, and even a
// copy of hutch there is another inode). A supervisor execs the binary
// itself (/proc/self/exe of the hutch that spawned it), never the
// read-only overlay or sealed copy its container's init runs from, so its
// exe is the binary on disk. One started by a hutch binary that has been
// replaced since (a rebuild, an upgrade) executes the old, deleted inode
// and is not believed: stop such containers before replacing the binary,
// or delete them while their process.json, which is read instead, is still
// there. The container's own processes live in its cgroup, which the
// cgroup driver finds and empties.

// supervisorComm is the supervisor's name in /proc/PID/comm: PR_SET_NAME
// "hutch-supervisor", cut to 15 bytes by the kernel (TASK_COMM_LEN).
const supervisorComm = "hutch-superviso"

// stray is a running supervisor found through /proc.
type stray struct {
	pid    int
	start  uint64
	bundle string
}

// fileID is a file's identity: the device and inode numbers stat(2) gives.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: st.Dev, ino: st.Ino}, nil
}

// euid reads the effective uid of pid: the second number of the Uid line
// of /proc/PID/status (real, effective, saved, filesystem).
func euid(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1, err
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			f := bytes.Fields(v)
			if len(f) < 2 {
				break
			}
			return strconv.Atoi(string(f[1]))
		}
	}
	return -1, fmt.Errorf("/proc/%d/status: no Uid line", pid)
}

// believed says whether pid runs as root and executes the binary whose
// identity is self (see the comment above).
func believed(pid int, self fileID) bool {
	if uid, err := euid(pid); err != nil || uid != 0 {
		return false
	}
	exe, err := statID("/proc/" + strconv.Itoa(pid) + "/exe")
	return err == nil && exe == self
}

// supervisors lists the running supervisors (scanSupervisors), scanning
// /proc once per scan.With context: a delete of N containers asks for each
// of them, and N scans of a /proc that holds N supervisors made the delete
// grow as N squared. Sharing one scan is sound because the caller holds
// the lock of every container it asks about, so no other hutch starts a
// supervisor for those bundles meanwhile, and a supervisor that ended since
// is skipped by its users (alive, by pid and start time).
func (d *Driver) supervisors(ctx context.Context) ([]stray, error) {
	return scan.Memo(ctx, "supervisors:"+d.exe, d.scanSupervisors)
}

// scanSupervisors lists the running supervisors, each with the bundle its
// environment names: the processes called hutch-supervisor whose
// environment says so and that are believed (root, and hutch's binary,
// d.exe). Each is read between two reads of its start time, so that a pid
// reused meanwhile is never taken for the process read first. A process
// that ends while it is read is skipped.
func (d *Driver) scanSupervisors() ([]stray, error) {
	self, err := statID(d.exe)
	if err != nil {
		return nil, fmt.Errorf("find supervisors: hutch's binary %s: %w", d.exe, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("find supervisors: %w", err)
	}
	var out []stray
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := "/proc/" + e.Name()
		comm, err := os.ReadFile(dir + "/comm")
		if err != nil || string(bytes.TrimSpace(comm)) != supervisorComm {
			continue
		}
		start, err := startTime(pid)
		if err != nil {
			continue
		}
		env, err := os.ReadFile(dir + "/environ")
		if err != nil {
			continue
		}
		var stage, bundle string
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte(envStage+"=")); ok {
				stage = string(v)
			} else if v, ok := bytes.CutPrefix(kv, []byte(envBundle+"=")); ok {
				bundle = string(v)
			}
		}
		if stage != stageSupervisor || bundle == "" || !believed(pid, self) || !alive(pid, start) {
			continue
		}
		out = append(out, stray{pid: pid, start: start, bundle: filepath.Clean(bundle)})
	}
	return out, nil
}

// containersDir is the folder of the container folders under the state
// root, as the driver names bundles.
func (d *Driver) containersDir() string {
	return filepath.Join(filepath.Clean(d.stateRoot), "containers")
}

// bundleOf is the bundle folder of container under the state root.
func (d *Driver) bundleOf(container string) (string, error) {
	if container == "" || container == "." || container == ".." || strings.ContainsAny(container, "/\x00") {
		return "", fmt.Errorf("process: find container %q's: not a container name", container)
	}
	return filepath.Join(d.containersDir(), container), nil
}

// strays lists the running supervisors whose environment names bundle.
func (d *Driver) strays(ctx context.Context, bundle string) ([]stray, error) {
	all, err := d.supervisors(ctx)
	if err != nil {
		return nil, err
	}
	bundle = filepath.Clean(bundle)
	var out []stray
	for _, s := range all {
		if s.bundle == bundle {
			out = append(out, s)
		}
	}
	return out, nil
}

// Owned returns the container's process as a plan.Process value this
// driver's Delete accepts when a supervisor runs for its bundle under the
// state root: the one process.json records, or one whose environment names
// the bundle. StopTimeout is -1, the container's own (or 10 s when its
// supervisor.json is gone too). It only reads process.json and /proc.
func (d *Driver) Owned(ctx context.Context, container string) ([]plan.Resource, error) {
	bundle, err := d.bundleOf(container)
	if err != nil {
		return nil, err
	}
	found := &plan.Process{Container: container, Bundle: bundle, StopTimeout: -1}
	if st, err := d.State(bundle); err == nil && st.SupervisorAlive() {
		return []plan.Resource{found}, nil
	}
	ss, err := d.strays(ctx, bundle)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", container, err)
	}
	if len(ss) == 0 {
		return nil, nil
	}
	return []plan.Resource{found}, nil
}

// Marked lists the containers that a running supervisor serves a bundle of
// under the state root, sorted.
func (d *Driver) Marked(ctx context.Context) ([]string, error) {
	all, err := d.supervisors(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range all {
		if filepath.Dir(s.bundle) == d.containersDir() && !slices.Contains(names, filepath.Base(s.bundle)) {
			names = append(names, filepath.Base(s.bundle))
		}
	}
	slices.Sort(names)
	return names, nil
}

// Elsewhere names the other state roots where a supervisor runs a
// container of this name: the namespaces, interfaces and cgroup marked for
// the container are then that root's, not leftovers of this one.
func (d *Driver) Elsewhere(container string) ([]string, error) {
	all, err := d.scanSupervisors()
	if err != nil {
		return nil, err
	}
	var roots []string
	for _, s := range all {
		dir := filepath.Dir(s.bundle)
		if filepath.Base(s.bundle) != container || dir == d.containersDir() || filepath.Base(dir) != "containers" {
			continue
		}
		if root := filepath.Dir(dir); !slices.Contains(roots, root) {
			roots = append(roots, root)
		}
	}
	return roots, nil
}

// killStrays ends the supervisors of bundle that its process.json does not
// record (it is gone, or names another): SIGKILL, checked by pid and start
// time, then a wait until each is gone. Such a supervisor has lost its
// bundle files, so it cannot stop its container the ordinary way; its
// container's processes, left in the cgroup, go with the cgroup's delete.
func (d *Driver) killStrays(ctx context.Context, bundle string) error {
	ss, err := d.strays(ctx, bundle)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range ss {
		if !alive(s.pid, s.start) {
			continue
		}
		if err := unix.Kill(s.pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill supervisor %d: %w", s.pid, err))
		}
	}
	wctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	for _, s := range ss {
		if err := waitExit(wctx, s.pid, s.start); err != nil {
			if ctx.Err() != nil {
				return errors.Join(append(errs, fmt.Errorf("wait for supervisor %d: %w", s.pid, err))...)
			}
			errs = append(errs, fmt.Errorf("supervisor %d still runs %s after SIGKILL", s.pid, killWait))
		}
	}
	return errors.Join(errs...)
}

// killWait bounds how long killStrays waits for a killed supervisor to go.
const killWait = 10 * time.Second
