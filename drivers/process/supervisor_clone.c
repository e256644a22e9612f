//go:build linux && cgo

// The start of the container's init stage, by the supervisor itself: the
// init is its own child, so it wait4(2)s for it and learns how it ended.
// What the clone needs (clone flags, the network namespace, the user
// namespace's maps, every hierarchy's cgroup.procs) the driver worked out
// in Go and wrote to supervisor.conf (newLaunch in conf.go); a Go helper
// for it would be a whole Go process start on every start.
//
// The init is executed from a binary no one can write to (CVE-2019-5736):
// the running binary through a detached read-only overlay, or else a
// sealed memfd copy (sup_sealed_exe). It finds its descriptors where
// init.go expects them, and one byte on its sync pipe lets it go on once
// it is in its namespaces and cgroup.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <time.h>
#include <unistd.h>

#include "supervisor.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// sup_overlay_exe opens the running binary through a private, read-only
// overlayfs mount that is attached to no mount table (fsopen(2),
// fsconfig(2), fsmount(2)): the init is executed from it, so /proc/PID/exe
// inside the container leads to a file no one can write (CVE-2019-5736).
// sealedSelf in reexec.go says more; this is its first choice in C. -1 when
// the kernel cannot, or the file at the binary's path is no longer the
// running binary.
static int sup_overlay_exe(void) {
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	struct stat self, got;
	if (n <= 0 || stat("/proc/self/exe", &self) < 0)
		return -1;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash == NULL)
		return -1;
	*slash = '\0';
	const char *base = slash + 1;
	int dir = -1, tfs = -1, empty = -1, ofs = -1, mnt = -1, fd = -1;
	dir = open(exe[0] ? exe : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		goto out;
	// The empty second lower layer (an overlay without an upper layer
	// needs two): a detached tmpfs.
	tfs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (tfs < 0 || fsconfig(tfs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto out;
	empty = fsmount(tfs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
	if (empty < 0)
		goto out;
	ofs = fsopen("overlay", FSOPEN_CLOEXEC);
	if (ofs < 0 || fsconfig(ofs, FSCONFIG_SET_FD, "lowerdir+", NULL, dir) < 0 ||
	    fsconfig(ofs, FSCONFIG_SET_FD, "lowerdir+", NULL, empty) < 0 ||
	    fsconfig(ofs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto out;
	mnt = fsmount(ofs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
	if (mnt < 0)
		goto out;
	fd = openat(mnt, base, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	// The file at the path must still be the running binary (a rebuild
	// renames a new one into place).
	if (fd >= 0 && (fstat(fd, &got) < 0 || got.st_ino != self.st_ino || got.st_size != self.st_size ||
			got.st_mtim.tv_sec != self.st_mtim.tv_sec || got.st_mtim.tv_nsec != self.st_mtim.tv_nsec)) {
		close(fd);
		fd = -1;
	}
out:;
	int fds[] = {dir, tfs, empty, ofs, mnt};
	for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return fd;
}

// sup_memfd_exe copies the running binary into a memfd and seals it
// against every write (memfdSelf in reexec.go): the fallback for a kernel
// without the new mount API or overlayfs.
static int sup_memfd_exe(void) {
	int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -1;
	int fd = memfd_create("hutch", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	// From the heap, not a static buffer: the pages go back when it is freed
	// (a supervisor's resident memory counts).
	size_t bn = 256 << 10;
	char *buf = fd >= 0 ? malloc(bn) : NULL;
	int ok = buf != NULL;
	while (ok) {
		ssize_t r = read(self, buf, bn);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ok = r == 0;
			break;
		}
		for (ssize_t w = 0; ok && w < r;) {
			ssize_t k = write(fd, buf + w, r - w);
			if (k < 0 && errno != EINTR)
				ok = 0;
			else if (k > 0)
				w += k;
		}
	}
	free(buf);
	close(self);
	// F_SEAL_WRITE fails with EBUSY while the kernel still holds
	// references to the pages written: try again a while.
	for (int try = 0; ok; try++) {
		if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) == 0)
			return fd;
		if (errno != EBUSY || try == 50)
			break;
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

// sup_sealed_exe opens the binary no one can write to that the init and
// an exec health check are executed from: the private overlay, or else
// the sealed memfd copy. -1 when neither can be made.
int sup_sealed_exe(void) {
	int fd = sup_overlay_exe();
	return fd >= 0 ? fd : sup_memfd_exe();
}

// sup_join_cgroups puts the calling process in the container's cgroup, in
// every hierarchy (cgroup.procs, as the cgroup driver's AddProcess does):
// for a child of the supervisor, such as an exec health check, before it
// executes anything.
int sup_join_cgroups(void) {
	char num[32];
	snprintf(num, sizeof num, "%d", (int)getpid());
	for (int i = 0; i < cf.n_cgroup_procs; i++)
		if (sup_write_file(cf.cgroup_procs[i], num) < 0)
			return -1;
	return 0;
}


// The descriptors the init stage finds (init.go): 0 /dev/null (the
// supervisor's own), 1 and 2 the log pipes, 3 the sealed binary it was
// executed from, 4 the sync pipe, 5 the error pipe, 6 config.json.
enum {
	SUP_FD_OUT = 1,
	SUP_FD_ERR = 2,
	SUP_FD_EXE = HUTCH_INIT_FD_EXE,
	SUP_FD_SYNC = HUTCH_INIT_FD_SYNC,
	SUP_FD_ERRPIPE = HUTCH_INIT_FD_ERROR,
	SUP_FD_CONFIG = HUTCH_INIT_FD_CONFIG,
	SUP_NFD
};
// sup_init_child places 1 to SUP_NFD - 1, each once.
_Static_assert(SUP_FD_EXE == 3 && SUP_FD_SYNC == 4 && SUP_FD_ERRPIPE == 5 && SUP_FD_CONFIG == 6, "the init's descriptors are 3 to 6");

// sup_launch is one try of starting the init (sup_clone): what it holds,
// closed at its end whatever happened, and what failed.
struct sup_launch {
	// The pipes: the release (sync), the init's errors (ep), the user
	// namespace's maps written (up), the child alive (hp: only when it
	// is born in its cgroup2 folder).
	int sync[2], ep[2], up[2], hp[2];
	int exe, cfg, netfd, selfnet, cgfd;
	// The cgroup v1 tasks files the child moves itself into (see
	// sup_clone), opened by the supervisor.
	int tasks[16], ntasks;
	char *tasks_path[16];
	const char *cgprocs; // the cgroup2 folder's cgroup.procs (cgfd's)
	const char *late;    // the cgroup.procs to write the pid to, when not born in it
	int into;	     // clone3 with CLONE_INTO_CGROUP cgfd
	pid_t pid;
	int released, into_used, unborn;
	// What failed and on what, for st.error ("start init: WHAT ARG:
	// errno"); what NULL: st.error holds the init's own message.
	const char *what, *arg;
	char cfgpath[4200], mapfile[64];
};

// sup_init_child runs in the new child of sup_clone until it executes the
// init stage. It was cloned by a raw clone(2), so it keeps to system calls
// and the string functions; any failure goes to the error pipe.
static void sup_init_child(const struct sup_launch *l, const int src[SUP_NFD]) {
	const char *what = "";
	char msg[512];
	// Alive: a child the kernel killed at its birth never gets here.
	if (l->hp[1] >= 0 && write(l->hp[1], "1", 1) != 1)
		_exit(127);
	sigprocmask(SIG_SETMASK, &sup_oldmask, NULL);
	signal(SIGPIPE, SIG_DFL);
	int errw = src[SUP_FD_ERRPIPE];
	if (cf.clone_flags & CLONE_NEWUSER) {
		// Wait until the supervisor has written the maps; then become the
		// namespace's root: the host's uid 0 has no name inside, and
		// execve(2) would drop every capability (initAttr's Credential).
		char c;
		what = "wait for the user namespace maps";
		if (read(l->up[0], &c, 1) != 1)
			goto fail;
	}
	// "0" is the writer itself: a single thread moving itself, for which
	// the kernel skips the global cgroup_threadgroup_rwsem (see sup_clone).
	for (int i = 0; i < l->ntasks; i++) {
		what = l->tasks_path[i];
		if (write(l->tasks[i], "0", 1) != 1)
			goto fail;
	}
	what = "setsid";
	if (setsid() < 0)
		goto fail;
	if (cf.clone_flags & CLONE_NEWUSER) {
		what = "setgroups";
		if (syscall(SYS_setgroups, 0, NULL) < 0)
			goto fail;
		what = "setgid 0";
		if (syscall(SYS_setresgid, 0, 0, 0) < 0)
			goto fail;
		what = "setuid 0";
		if (syscall(SYS_setresuid, 0, 0, 0) < 0)
			goto fail;
	}
	what = "chdir /";
	if (chdir("/") < 0)
		goto fail;
	// Move each descriptor above the ones being placed first, then down
	// into its place (dup2 clears close-on-exec on the copy).
	int tmp[SUP_NFD];
	what = "place descriptors";
	for (int i = SUP_FD_OUT; i < SUP_NFD; i++)
		if ((tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, SUP_NFD + 3)) < 0)
			goto fail;
	errw = tmp[SUP_FD_ERRPIPE];
	for (int i = SUP_FD_OUT; i < SUP_NFD; i++)
		if (dup2(tmp[i], i) < 0)
			goto fail;
	static char e_stage[] = HUTCH_ENV_STAGE "=" HUTCH_STAGE_INIT;
	char e_bundle[4200];
	snprintf(e_bundle, sizeof e_bundle, HUTCH_ENV_BUNDLE "=%s", sup_bundle);
	char *envp[] = {e_stage, e_bundle, NULL};
	const char *name = strrchr(sup_bundle, '/');
	char *argv[] = {"hutch-" HUTCH_STAGE_INIT, (char *)(name ? name + 1 : sup_bundle), NULL};
	what = "execve /proc/self/fd/" SUP_STR(HUTCH_INIT_FD_EXE);
	execve("/proc/self/fd/" SUP_STR(HUTCH_INIT_FD_EXE), argv, envp);
fail:;
	int e = errno;
	int n = snprintf(msg, sizeof msg, "start init: %.400s: %s", what, sup_errstr(e));
	if (n > 0 && write(errw, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0)
		_exit(127);
	_exit(127);
}

// sup_launch_open opens what the init is given: config.json (opened here
// as the host's root, as the file may not be readable by the root of a
// user namespace), the sealed binary, and the pipes.
static int sup_launch_open(struct sup_launch *l) {
	sup_path(l->cfgpath, sizeof l->cfgpath, HUTCH_SPEC_FILE);
	l->what = "open";
	l->arg = l->cfgpath;
	if ((l->cfg = open(l->cfgpath, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	l->what = "sealed copy of hutch";
	l->arg = "";
	if ((l->exe = sup_sealed_exe()) < 0)
		return -1;
	l->what = "pipe";
	if (pipe2(l->sync, O_CLOEXEC) < 0 || pipe2(l->ep, O_CLOEXEC) < 0 || pipe2(l->up, O_CLOEXEC) < 0)
		return -1;
	return 0;
}

// sup_launch_cgroups opens, for each hierarchy's cgroup.procs the driver
// named, the cgroup2 folder (for CLONE_INTO_CGROUP) or the v1 tasks file
// the child writes itself into.
static int sup_launch_cgroups(struct sup_launch *l) {
	for (int i = 0; i < cf.n_cgroup_procs; i++) {
		char dir[4200];
		snprintf(dir, sizeof dir, "%s", cf.cgroup_procs[i]);
		char *slash = strrchr(dir, '/');
		if (slash != NULL)
			*slash = '\0';
		l->what = "cgroup: open";
		l->arg = cf.cgroup_procs[i];
		int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct statfs sf;
		if (d < 0 || fstatfs(d, &sf) < 0) {
			if (d >= 0)
				close(d);
			return -1;
		}
		if (sf.f_type == CGROUP2_SUPER_MAGIC && l->cgfd < 0) {
			l->cgfd = d;
			l->cgprocs = cf.cgroup_procs[i];
			continue;
		}
		close(d);
		if (sf.f_type != CGROUP_SUPER_MAGIC) {
			errno = EINVAL; // a second cgroup2 folder, or no cgroup at all
			return -1;
		}
		char *t = malloc(strlen(dir) + sizeof "/tasks");
		if (t == NULL)
			return -1;
		sprintf(t, "%s/tasks", dir);
		l->tasks_path[l->ntasks] = t;
		l->arg = t;
		if ((l->tasks[l->ntasks++] = open(t, O_WRONLY | O_CLOEXEC)) < 0)
			return -1;
	}
	return 0;
}

// sup_launch_into chooses how the init gets into its cgroup2 folder: born
// in it (into, when there is one), with a pipe on which it says it is
// alive (see sup_start_init); else its pid is written to cgroup.procs
// once it runs.
static int sup_launch_into(struct sup_launch *l, int into) {
	if (l->cgfd < 0 || !into) {
		l->late = l->cgprocs;
		return 0;
	}
	l->into = 1;
	l->what = "pipe";
	l->arg = "";
	return pipe2(l->hp, O_CLOEXEC);
}

// sup_launch_enter_netns moves the supervisor into the container's
// network namespace, which the child inherits (with a new user namespace
// it could not join one the host's owns itself); sup_launch_clone moves it
// back.
static int sup_launch_enter_netns(struct sup_launch *l) {
	if (cf.netns[0] == '\0')
		return 0;
	l->what = "network namespace";
	l->arg = cf.netns;
	if ((l->netfd = open(cf.netns, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	l->arg = "/proc/self/ns/net";
	if ((l->selfnet = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	l->what = "setns";
	l->arg = cf.netns;
	return setns(l->netfd, CLONE_NEWNET);
}

// sup_launch_clone clones the init into its new namespaces (and its
// cgroup2 folder), then moves the supervisor back to its own network
// namespace. The child runs sup_init_child.
static int sup_launch_clone(struct sup_launch *l, int out, int err) {
	struct {
		uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
	} ca = {.flags = cf.clone_flags, .exit_signal = SIGCHLD};
	if (l->into) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)l->cgfd;
	}
	l->into_used = l->into;
	l->pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
	// No clone3 (before 5.3, or a seccomp filter that refuses it), or a
	// clone3 without CLONE_INTO_CGROUP (5.3 to 5.6: E2BIG for the larger
	// struct) or refusing it: a plain clone, and the pid written late.
	if (l->pid < 0 && (errno == ENOSYS || (l->into_used && (errno == E2BIG || errno == EINVAL || errno == EPERM)))) {
		l->into_used = 0;
		l->pid = (pid_t)syscall(SYS_clone, (unsigned long)(cf.clone_flags | SIGCHLD), NULL, NULL, NULL, NULL);
		l->late = l->cgprocs;
	}
	if (l->pid == 0) {
		// The child keeps none of the supervisor's ends of the pipes:
		// should the supervisor die before it writes the maps, the
		// child's read of them ends (EOF) instead of blocking for ever
		// with the supervisor's descriptors (and the spawn stage's
		// report pipe, and so `hutch apply`) held open.
		close(l->sync[1]);
		close(l->ep[0]);
		close(l->up[1]);
		if (l->hp[0] >= 0)
			close(l->hp[0]);
		int src[SUP_NFD] = {0, out, err, l->exe, l->sync[0], l->ep[1], l->cfg};
		sup_init_child(l, src);
	}
	int ce = errno;
	if (l->selfnet >= 0 && setns(l->selfnet, CLONE_NEWNET) < 0)
		sup_log("back to the host's network namespace: %s", strerror(errno));
	errno = ce;
	l->what = "clone";
	l->arg = "";
	if (l->pid < 0)
		return -1;
	close(l->sync[0]);
	close(l->ep[1]);
	close(l->up[0]);
	l->sync[0] = l->ep[1] = l->up[0] = -1;
	return 0;
}

// sup_launch_born waits for a child born in its cgroup2 folder to say it
// is alive: EOF is a child that ended before it ran.
static int sup_launch_born(struct sup_launch *l) {
	if (l->hp[1] < 0)
		return 0;
	close(l->hp[1]);
	l->hp[1] = -1;
	char c;
	ssize_t r;
	while ((r = read(l->hp[0], &c, 1)) < 0 && errno == EINTR)
		;
	if (r == 1)
		return 0;
	l->what = "clone";
	errno = ECHILD;
	l->released = 0; // it has ended: see how
	l->unborn = 1;
	return -1;
}

// sup_launch_maps writes a new user namespace's uid and gid maps and lets
// the child go on to become its root.
static int sup_launch_maps(struct sup_launch *l) {
	if (!(cf.clone_flags & CLONE_NEWUSER))
		return 0;
	l->what = "write";
	l->arg = l->mapfile;
	snprintf(l->mapfile, sizeof l->mapfile, "/proc/%d/uid_map", (int)l->pid);
	if (cf.uid_map[0] && sup_write_file(l->mapfile, cf.uid_map) < 0)
		return -1;
	snprintf(l->mapfile, sizeof l->mapfile, "/proc/%d/gid_map", (int)l->pid);
	if (cf.gid_map[0] && sup_write_file(l->mapfile, cf.gid_map) < 0)
		return -1;
	l->what = "release init";
	l->arg = "";
	if (write(l->up[1], "1", 1) != 1) {
		l->released = 0;
		return -1;
	}
	return 0;
}

// sup_launch_late writes the pid of a child not born in its cgroup2
// folder to the folder's cgroup.procs (the kernel's global lock, and its
// grace period, are paid then).
static int sup_launch_late(struct sup_launch *l) {
	if (l->late == NULL)
		return 0;
	char num[32];
	snprintf(num, sizeof num, "%d", (int)l->pid);
	l->what = "cgroup: write";
	l->arg = l->late;
	return sup_write_file(l->late, num);
}

// sup_launch_release writes the one byte that lets the init go on and
// reads its error pipe until the workload runs: EOF, or the init's error
// (into st.error). A child that failed (its tasks files) has closed the
// sync pipe: the write fails, and the error pipe says why.
static int sup_launch_release(struct sup_launch *l) {
	l->what = "release init";
	l->arg = "";
	l->released = write(l->sync[1], "1", 1) == 1;
	int we = errno;
	size_t got = 0;
	for (;;) {
		ssize_t r = read(l->ep[0], st.error + got, sizeof st.error - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
		if (got == sizeof st.error - 1)
			break;
	}
	st.error[got] = '\0';
	errno = we;
	if (got > 0)
		l->what = NULL;
	return got > 0 || !l->released ? -1 : 0;
}

// sup_launch_fail records why the try failed (st.error) and ends the child
// it made, if any, after seeing how it ended: *born_dead says the kernel
// SIGKILLed it at its birth.
static void sup_launch_fail(struct sup_launch *l, int *born_dead) {
	if (l->what != NULL)
		snprintf(st.error, sizeof st.error, "start init: %s%s%.2048s: %s", l->what, l->arg[0] ? " " : "", l->arg, sup_errstr(errno));
	if (l->pid > 0) {
		// A child that closed the release pipe has ended (or is ending):
		// see how it ended before any kill of ours could hide it.
		int status = 0;
		pid_t w;
		while ((w = waitpid(l->pid, &status, l->released ? WNOHANG : 0)) < 0 && errno == EINTR)
			;
		if (w == l->pid) {
			// Killed before it said it was alive: the kernel's doing
			// (see sup_start_init), not an OOM kill or a stop later on.
			*born_dead = l->into_used && l->unborn && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
		} else {
			kill(l->pid, SIGKILL);
			while (waitpid(l->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
	}
	l->pid = -1;
}

// sup_launch_close closes what the try held.
static void sup_launch_close(struct sup_launch *l) {
	int fds[] = {l->sync[0], l->sync[1], l->ep[0], l->ep[1], l->up[0], l->up[1], l->hp[0], l->hp[1],
		     l->exe,	 l->cfg,     l->netfd, l->selfnet, l->cgfd};
	for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (int i = 0; i < l->ntasks; i++) {
		if (l->tasks[i] >= 0)
			close(l->tasks[i]);
		free(l->tasks_path[i]);
	}
}

// sup_clone starts the container's init stage as startInit does for
// `hutch run` (launch.go), in the same order: the sealed binary, the
// pipes, the network namespace joined around clone(2) with the new
// namespaces' flags, the user namespace's maps, then one byte on the sync
// pipe lets the init go on; the error pipe closing at its execve(2) of the
// workload says it started. It returns the init's pid, or -1 with
// st.error set.
//
// The cgroups are joined otherwise than by writing the init's pid to each
// cgroup.procs. That write takes the kernel's global
// cgroup_threadgroup_rwsem for writing, and that percpu rwsem makes its
// writer wait for an RCU grace period (percpu_down_write, rcu_sync_enter):
// 10 ms of every start here. So the init is born in its cgroup2 folder
// (clone3(2) CLONE_INTO_CGROUP, under the read side that every fork takes)
// and moves itself into each v1 hierarchy before it executes anything, by
// writing "0" to the tasks file the supervisor opened for it: a single
// thread moving itself skips the global lock (cgroup_procs_write_start).
// Only without clone3 or its CLONE_INTO_CGROUP (Linux before 5.7, or a
// seccomp filter refusing them) is its pid written to the cgroup2
// cgroup.procs.
//
// With into = 0 it does not use CLONE_INTO_CGROUP (see sup_start_init).
// *born_dead says the child was SIGKILLed by the kernel at its birth.
static int sup_clone(int out, int err, int into, int *born_dead) {
	struct sup_launch l = {
		.sync = {-1, -1}, .ep = {-1, -1}, .up = {-1, -1}, .hp = {-1, -1},
		.exe = -1, .cfg = -1, .netfd = -1, .selfnet = -1, .cgfd = -1, .pid = -1, .released = 1, .arg = "",
	};
	*born_dead = 0;
	st.error[0] = '\0';
	int ok = sup_launch_open(&l) == 0 && sup_launch_cgroups(&l) == 0 && sup_launch_into(&l, into) == 0 &&
		 sup_launch_enter_netns(&l) == 0;
	// From the clone on, each step needs the child made by the one before.
	ok = ok && sup_launch_clone(&l, out, err) == 0 && sup_launch_born(&l) == 0 && sup_launch_maps(&l) == 0 &&
	     sup_launch_late(&l) == 0 && sup_launch_release(&l) == 0;
	if (!ok)
		sup_launch_fail(&l, born_dead);
	sup_launch_close(&l);
	return l.pid;
}

// sup_start_init starts the init through sup_clone. The kernel (6.14 on,
// up to at least 6.18) SIGKILLs a child born with CLONE_INTO_CGROUP in a
// cgroup that was ever killed through cgroup.kill: cgroup_css_set_fork
// takes the kill sequence number of the parent's cgroup, not the target's
// (it reads kargs->cgrp before setting it), and cgroup_post_fork sees them
// differ. The driver's KillAll writes cgroup.kill, so a container started
// again in its cgroup meets that: start again without CLONE_INTO_CGROUP,
// and keep to that in this supervisor.
int sup_start_init(int out, int err) {
	static int no_into;
	int born_dead = 0;
	int pid = sup_clone(out, err, !no_into, &born_dead);
	if (pid < 0 && born_dead) {
		no_into = 1;
		pid = sup_clone(out, err, 0, &born_dead);
	}
	return pid;
}
