//go:build linux

package process

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupJoin is how an init started from Go gets into the container's
// cgroup without the kernel's global cgroup_threadgroup_rwsem, whose
// writer waits for an RCU grace period (5-16 ms of every start here), as
// the C supervisor does it (sup_clone): born in the cgroup2 folder (clone3
// CLONE_INTO_CGROUP, which os/exec does with SysProcAttr.UseCgroupFD), and
// moving itself into each v1 hierarchy through its tasks file before the
// Go runtime starts (selfjoin.c).
type cgroupJoin struct {
	tasks   []*os.File // each v1 hierarchy's tasks file, open for writing
	v2dir   *os.File   // the cgroup2 folder, or nil
	v2procs string     // its cgroup.procs, written when the clone could not use v2dir
}

// openCgroupJoin opens what the init needs to join the cgroup at path, or
// returns nil when the parent must write its pid into each cgroup.procs
// instead (AddProcess): without cgo (no selfjoin.c) and in a new user
// namespace (the child would write as the namespace's root).
func openCgroupJoin(cg CgroupJoiner, path string, userns bool) (*cgroupJoin, error) {
	if !withC || userns || cg == nil || path == "" {
		return nil, nil
	}
	files, err := cg.ProcsFiles(path)
	if err != nil {
		return nil, err
	}
	j := &cgroupJoin{}
	for _, procs := range files {
		dir := filepath.Dir(procs)
		var sf unix.Statfs_t
		if err := unix.Statfs(dir, &sf); err != nil {
			j.close()
			return nil, fmt.Errorf("cgroup %s: %w", dir, err)
		}
		if sf.Type == unix.CGROUP2_SUPER_MAGIC {
			if j.v2dir != nil {
				j.close()
				return nil, fmt.Errorf("cgroup %s: two cgroup2 folders", path)
			}
			if j.v2dir, err = os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				j.close()
				return nil, fmt.Errorf("cgroup: %w", err)
			}
			j.v2procs = procs
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, "tasks"), os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			j.close()
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		j.tasks = append(j.tasks, f)
	}
	return j, nil
}

// files appends the hello pipe's write end and the tasks files to the
// init's descriptors (from fd 3: extra) and returns them with the
// _HUTCH_JOIN value that names them for selfjoin.c.
func (j *cgroupJoin) files(extra []*os.File, hello *os.File) ([]*os.File, string) {
	fds := []string{}
	out := append(extra, hello)
	helloFd := 3 + len(extra)
	for i, f := range j.tasks {
		out = append(out, f)
		fds = append(fds, strconv.Itoa(helloFd+1+i))
	}
	env := strconv.Itoa(helloFd)
	if len(fds) > 0 {
		env += ":" + strings.Join(fds, ",")
	}
	return out, env
}

func (j *cgroupJoin) close() {
	if j == nil {
		return
	}
	for _, f := range j.tasks {
		f.Close()
	}
	if j.v2dir != nil {
		j.v2dir.Close()
	}
}
