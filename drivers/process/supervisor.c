//go:build linux && cgo

// The container supervisor, in C, as conmon is for podman.
//
// The supervisor lives as long as its container, so its memory counts. A Go
// process carries the runtime and the heap every package's initialisation
// leaves (several MiB resident); this loop runs in a constructor, before the
// Go runtime starts, in the hutch binary that is already on disk: no second
// program to install. It starts the container's init stage itself
// (sup_clone: namespaces, cgroup, user namespace maps) and reads the OOM
// kill count itself, from what the driver worked out in Go and wrote to
// supervisor.conf (newLaunch in conf.go): a Go helper for each would
// be a whole Go process start on the path of every start and every exit.
// Only killing a cgroup whose init outlived the stop timeout runs in a
// short-lived helper process of the same binary (_HUTCH_STAGE=cgroup-kill).
//
// It acts when _HUTCH_STAGE=supervisor. It reads
// bundle/supervisor.conf (written by the driver), starts the container's
// init, and then, with PR_SET_CHILD_SUBREAPER, waits in poll(2) for the
// init's stdout and stderr (written to logs/container.log in the CRI format,
// rotated), for SIGCHLD (the init ended: exit code, signal, OOM kill; the
// restart policy), SIGTERM or SIGINT (stop: the stop signal, the timeout,
// then SIGKILL of the cgroup) and SIGHUP (reread the policies), and runs
// the health check (supervisor_health.c). Its record is bundle/process.json,
// the State type of state.go, written atomically; what happens to the
// process (start, exit, OOM kill, restart, health, stop) it appends to
// bundle/events.jsonl (supervisor_events.c).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/close_range.h>
#include <linux/magic.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor.h"

#define SUP_MAXLINE (16 << 10)

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

static struct {
	char container[256];
	char digest[256];
	char restart[32];
	long max_retries;
	int stop_signal;
	long long stop_timeout_ns;
	long long log_max_size;
	long log_max_files;
	char oom_file[4096];
	// How to start the init (sup_clone), worked out by the driver from
	// config.json and the cgroup driver (newLaunch in conf.go).
	unsigned long clone_flags;
	char netns[4096];
	char uid_map[1024], gid_map[1024]; // "inside outside count" lines
	char *cgroup_procs[16];
	int n_cgroup_procs;
} cf;

static struct {
	const char *status;
	int sup_pid;
	unsigned long long sup_start;
	int pid;
	unsigned long long pid_start;
	struct timespec started, finished;
	int restarts;
	int exit_code;
	char signal[32];
	int oom;
	char error[4096];
} st;

char sup_bundle[4096];
static char sup_logpath[4200];
static int sup_logfd = -1;
static long long sup_logsize;
sigset_t sup_oldmask;

struct sup_stream {
	int fd;
	const char *name;
	size_t len;
	char buf[SUP_MAXLINE];
};
static struct sup_stream sup_out = {-1, "stdout", 0, {0}}, sup_err = {-1, "stderr", 0, {0}};

void sup_log(const char *fmt, const char *arg) {
	fprintf(stderr, "supervisor: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
}

// sup_errstr is strerror(e) as Go says it: "no such file or directory".
const char *sup_errstr(int e) {
	static char buf[128];
	snprintf(buf, sizeof buf, "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
		buf[0] += 'a' - 'A';
	return buf;
}

long long sup_now(clockid_t c) {
	struct timespec ts;
	clock_gettime(c, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sup_path(char *dst, size_t n, const char *name) {
	snprintf(dst, n, "%s/%s", sup_bundle, name);
}

// sup_read_conf reads supervisor.conf: one "key value" per line. It
// returns 1 when the health check changed (supervisor_health.c takes the
// health_* lines), 0 when not, -1 when the file cannot be read.
static int sup_read_conf(void) {
	char p[4200], line[4200];
	sup_path(p, sizeof p, "supervisor.conf");
	FILE *f = fopen(p, "re");
	if (f == NULL)
		return -1;
	cf.oom_file[0] = cf.netns[0] = cf.uid_map[0] = cf.gid_map[0] = '\0';
	cf.clone_flags = 0;
	for (int i = 0; i < cf.n_cgroup_procs; i++)
		free(cf.cgroup_procs[i]);
	cf.n_cgroup_procs = 0;
	sup_health_conf_begin();
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		char *v = strchr(line, ' ');
		if (v == NULL)
			continue;
		*v++ = '\0';
		if (strcmp(line, "container") == 0)
			snprintf(cf.container, sizeof cf.container, "%s", v);
		else if (strcmp(line, "digest") == 0)
			snprintf(cf.digest, sizeof cf.digest, "%s", v);
		else if (strcmp(line, "restart") == 0)
			snprintf(cf.restart, sizeof cf.restart, "%s", v);
		else if (strcmp(line, "max_retries") == 0)
			cf.max_retries = atol(v);
		else if (strcmp(line, "stop_signal") == 0)
			cf.stop_signal = atoi(v);
		else if (strcmp(line, "stop_timeout_ns") == 0)
			cf.stop_timeout_ns = atoll(v);
		else if (strcmp(line, "log_max_size") == 0)
			cf.log_max_size = atoll(v);
		else if (strcmp(line, "log_max_files") == 0)
			cf.log_max_files = atol(v);
		else if (strcmp(line, "oom_file") == 0)
			snprintf(cf.oom_file, sizeof cf.oom_file, "%s", v);
		else if (strcmp(line, "clone_flags") == 0)
			cf.clone_flags = strtoul(v, NULL, 10);
		else if (strcmp(line, "netns") == 0)
			snprintf(cf.netns, sizeof cf.netns, "%s", v);
		else if (strcmp(line, "uid_map") == 0 || strcmp(line, "gid_map") == 0) {
			char *m = line[0] == 'u' ? cf.uid_map : cf.gid_map;
			size_t k = strlen(m);
			snprintf(m + k, sizeof cf.uid_map - k, "%s\n", v);
		} else if (strcmp(line, "cgroup_procs") == 0 && cf.n_cgroup_procs < 16) {
			char *d = strdup(v);
			if (d != NULL)
				cf.cgroup_procs[cf.n_cgroup_procs++] = d;
		} else
			sup_health_conf(line, v);
	}
	fclose(f);
	if (cf.stop_signal <= 0)
		cf.stop_signal = SIGTERM;
	return sup_health_conf_end();
}

// sup_start_time reads field 22 of /proc/PID/stat, counting after the last
// ')' because the command name may hold spaces.
static unsigned long long sup_start_time(int pid) {
	char p[64], buf[1024];
	snprintf(p, sizeof p, "/proc/%d/stat", pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *s = strrchr(buf, ')');
	if (s == NULL)
		return 0;
	s++;
	for (int field = 2; field < 21; field++) {
		s = strchr(s + 1, ' ');
		if (s == NULL)
			return 0;
	}
	return strtoull(s + 1, NULL, 10);
}

void sup_json_str(FILE *f, const char *s) {
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n' || c == '\t' || c == '\r')
			fprintf(f, "\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void sup_fmt_time(char *buf, size_t n, struct timespec ts) {
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + k, n - k, ".%09ldZ", ts.tv_nsec);
}

// sup_save writes process.json atomically: a temporary file, rename(2).
// No fsync(2): the record describes processes, which do not outlive the
// machine (see writeAtomic in state.go).
void sup_save(void) {
	char p[4200], tmp[4300], t[64];
	sup_path(p, sizeof p, "process.json");
	snprintf(tmp, sizeof tmp, "%s.tmp%d", p, (int)getpid());
	FILE *f = fopen(tmp, "we");
	if (f == NULL) {
		sup_log("save state: %s", strerror(errno));
		return;
	}
	fprintf(f, "{\n  \"container\": ");
	sup_json_str(f, cf.container);
	fprintf(f, ",\n  \"status\": ");
	sup_json_str(f, st.status);
	fprintf(f, ",\n  \"digest\": ");
	sup_json_str(f, cf.digest);
	fprintf(f, ",\n  \"supervisorPid\": %d,\n  \"supervisorStart\": %llu", st.sup_pid, st.sup_start);
	if (st.pid > 0)
		fprintf(f, ",\n  \"pid\": %d,\n  \"pidStart\": %llu", st.pid, st.pid_start);
	if (st.started.tv_sec) {
		sup_fmt_time(t, sizeof t, st.started);
		fprintf(f, ",\n  \"started\": \"%s\"", t);
	}
	if (st.finished.tv_sec) {
		sup_fmt_time(t, sizeof t, st.finished);
		fprintf(f, ",\n  \"finished\": \"%s\"", t);
	}
	fprintf(f, ",\n  \"restarts\": %d,\n  \"exitCode\": %d", st.restarts, st.exit_code);
	if (st.signal[0])
		fprintf(f, ",\n  \"signal\": \"%s\"", st.signal);
	fprintf(f, ",\n  \"oomKilled\": %s", st.oom ? "true" : "false");
	if (st.error[0]) {
		fprintf(f, ",\n  \"error\": ");
		sup_json_str(f, st.error);
	}
	sup_health_json(f);
	fprintf(f, "\n}\n");
	int ok = fflush(f) == 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, p) != 0) {
		sup_log("save state: %s", strerror(errno));
		unlink(tmp);
	}
}

static void sup_open_log(void) {
	sup_logfd = open(sup_logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	struct stat s;
	sup_logsize = (sup_logfd >= 0 && fstat(sup_logfd, &s) == 0) ? s.st_size : 0;
}

// sup_rotate: container.log becomes container.log.1, .1 becomes .2, ...,
// keeping log_max_files files in all.
static void sup_rotate(void) {
	char a[4300], b[4300];
	close(sup_logfd);
	long keep = cf.log_max_files - 1;
	if (keep < 1) {
		unlink(sup_logpath);
	} else {
		snprintf(a, sizeof a, "%s.%ld", sup_logpath, keep);
		unlink(a);
		for (long i = keep - 1; i >= 1; i--) {
			snprintf(a, sizeof a, "%s.%ld", sup_logpath, i);
			snprintf(b, sizeof b, "%s.%ld", sup_logpath, i + 1);
			rename(a, b);
		}
		snprintf(b, sizeof b, "%s.1", sup_logpath);
		rename(sup_logpath, b);
	}
	sup_open_log();
}

// sup_record writes one CRI log record: time, stream, F (full line) or P
// (part of a longer one), the text.
static void sup_record(const char *stream, int partial, const char *text, size_t len) {
	static char rec[SUP_MAXLINE + 128];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char t[64];
	sup_fmt_time(t, sizeof t, ts);
	int h = snprintf(rec, sizeof rec, "%s %s %c ", t, stream, partial ? 'P' : 'F');
	memcpy(rec + h, text, len);
	rec[h + len] = '\n';
	size_t n = h + len + 1;
	if (cf.log_max_size > 0 && sup_logsize > 0 && sup_logsize + (long long)n > cf.log_max_size)
		sup_rotate();
	if (sup_logfd < 0)
		sup_open_log(); // a full disk or a removed folder: try again
	if (sup_logfd < 0)
		return;
	ssize_t w = write(sup_logfd, rec, n);
	if (w > 0)
		sup_logsize += w;
}

// sup_drain reads what the stream has (its descriptor is non-blocking) and
// records its full lines. It returns 1 when it read something, -1 when
// there is nothing now, 0 at the end (or an error, which ends it too).
static int sup_drain(struct sup_stream *s) {
	ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
	if (n < 0)
		return (errno == EINTR || errno == EAGAIN) ? -1 : 0;
	if (n == 0)
		return 0;
	s->len += n;
	char *p = s->buf, *end = s->buf + s->len, *nl;
	while ((nl = memchr(p, '\n', end - p)) != NULL) {
		sup_record(s->name, 0, p, nl - p);
		p = nl + 1;
	}
	s->len = end - p;
	memmove(s->buf, p, s->len);
	if (s->len == sizeof s->buf) {
		sup_record(s->name, 1, s->buf, s->len);
		s->len = 0;
	}
	return 1;
}

static void sup_close_stream(struct sup_stream *s) {
	if (s->fd < 0)
		return;
	while (sup_drain(s) == 1)
		;
	if (s->len > 0)
		sup_record(s->name, 0, s->buf, s->len);
	s->len = 0;
	close(s->fd);
	s->fd = -1;
}

// sup_helper runs a Go stage of the hutch binary (cgroup-kill) and waits
// for it: its exit status, or 128 + the signal that ended it.
static int sup_helper(const char *stage) {
	pid_t c = fork();
	if (c < 0)
		return -1;
	if (c == 0) {
		sigprocmask(SIG_SETMASK, &sup_oldmask, NULL);
		signal(SIGPIPE, SIG_DFL);
		setenv("_HUTCH_STAGE", stage, 1);
		char name[64];
		snprintf(name, sizeof name, "hutch-%s", stage);
		execl("/proc/self/exe", name, cf.container, (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(c, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// sup_write_file writes s to path in one write(2) (a uid_map must be
// written at once).
static int sup_write_file(const char *path, const char *s) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

// sup_oom_kills reads the oom_kill line of the cgroup file the driver
// named (v1 memory.oom_control, v2 memory.events: "oom_kill N", which
// oom_kill_disable and oom_group_kill must not be taken for). -1 when
// there is no such file or line.
static long long sup_oom_kills(void) {
	if (cf.oom_file[0] == '\0')
		return -1;
	int fd = open(cf.oom_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (char *l = buf; l != NULL;) {
		if (strncmp(l, "oom_kill ", 9) == 0)
			return strtoll(l + 9, NULL, 10);
		l = strchr(l, '\n');
		if (l != NULL)
			l++;
	}
	return -1;
}

static long long sup_oom_before = -1;
static long long sup_started_mono;

// The OOM killer may kill a process of the container other than its first
// (one that `hutch exec` started, a worker the workload forked) while the
// first runs on. So that the oom event says so when it happens, not only
// at the end of the run, the supervisor watches the count: sup_oom_fd is
// readable when it may have risen. sup_oom_seen is the count last
// reported (or found at the start of the run).
static int sup_oom_fd = -1, sup_oom_v1;
static long long sup_oom_seen = -1, sup_oom_recheck_at = -1;

// sup_oom_watch opens sup_oom_fd for the cgroup file the driver named:
//   - cgroup v2 (memory.events): an inotify(7) watch; the kernel notifies
//     each change of the file to its watchers as IN_MODIFY
//     (cgroup_file_notify);
//   - cgroup v1 (memory.oom_control): an eventfd(2) registered by writing
//     "EVENTFD OOM_CONTROL_FD" to the cgroup's cgroup.event_control; the
//     kernel signals it when the cgroup is out of memory
//     (mem_cgroup_oom_notify), before the OOM killer has counted its kill,
//     so the count is read again a little later (sup_oom_recheck_at).
// Without either (no memory controller, a kernel that refuses), the count
// is read at the end of each run only.
static void sup_oom_watch(void) {
	const char *base = strrchr(cf.oom_file, '/');
	if (cf.oom_file[0] == '\0' || base == NULL)
		return;
	if (strcmp(base + 1, "memory.events") == 0) {
		int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (fd >= 0 && inotify_add_watch(fd, cf.oom_file, IN_MODIFY) < 0) {
			close(fd);
			fd = -1;
		}
		sup_oom_fd = fd;
		return;
	}
	char ctl[4200], line[64];
	snprintf(ctl, sizeof ctl, "%.*s/cgroup.event_control", (int)(base - cf.oom_file), cf.oom_file);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int ofd = open(cf.oom_file, O_RDONLY | O_CLOEXEC);
	snprintf(line, sizeof line, "%d %d", efd, ofd);
	if (efd >= 0 && ofd >= 0 && sup_write_file(ctl, line) == 0) {
		sup_oom_fd = efd;
		sup_oom_v1 = 1;
	} else if (efd >= 0) {
		close(efd);
	}
	if (ofd >= 0)
		close(ofd); // the registration keeps what it needs
}

// sup_oom_check reads the count and appends an oom event when it rose
// since it was last seen.
static void sup_oom_check(void) {
	long long n = sup_oom_kills();
	if (n < 0)
		return;
	if (sup_oom_seen >= 0 && n > sup_oom_seen) {
		char msg[128];
		snprintf(msg, sizeof msg, "the OOM killer killed %lld process(es) of the container", n - sup_oom_seen);
		sup_event(&(struct sup_event){.type = "oom", .pid = st.pid, .message = msg});
	}
	sup_oom_seen = n;
}

// sup_oom_notified drains sup_oom_fd after poll(2) found it readable.
static void sup_oom_notified(void) {
	char buf[4096];
	while (read(sup_oom_fd, buf, sizeof buf) > 0)
		;
	sup_oom_check();
	if (sup_oom_v1)
		sup_oom_recheck_at = sup_now(CLOCK_MONOTONIC) + 100000000LL;
}

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
enum { SUP_FD_OUT = 1, SUP_FD_ERR, SUP_FD_EXE, SUP_FD_SYNC, SUP_FD_ERRPIPE, SUP_FD_CONFIG, SUP_NFD };

// The cgroup v1 tasks files the child of sup_clone moves itself into (see
// there), opened by the supervisor.
static int sup_tasks[16], sup_ntasks;
static const char *sup_tasks_path[16];

// sup_init_child runs in the new child of sup_clone until it executes the
// init stage. It was cloned by a raw clone(2), so it keeps to system calls
// and the string functions; any failure goes to the error pipe.
static void sup_init_child(const int src[SUP_NFD], int userns_r, int hello_w) {
	const char *what = "";
	char msg[512];
	// Alive: a child the kernel killed at its birth never gets here.
	if (hello_w >= 0 && write(hello_w, "1", 1) != 1)
		_exit(127);
	sigprocmask(SIG_SETMASK, &sup_oldmask, NULL);
	signal(SIGPIPE, SIG_DFL);
	int errw = src[SUP_FD_ERRPIPE];
	if (cf.clone_flags & CLONE_NEWUSER) {
		// Wait until the supervisor has written the maps; then become the
		// namespace's root: the host's uid 0 has no name inside, and
		// execve(2) would drop every capability (startInit's Credential).
		char c;
		what = "wait for the user namespace maps";
		if (read(userns_r, &c, 1) != 1)
			goto fail;
	}
	// "0" is the writer itself: a single thread moving itself, for which
	// the kernel skips the global cgroup_threadgroup_rwsem (see sup_clone).
	for (int i = 0; i < sup_ntasks; i++) {
		what = sup_tasks_path[i];
		if (write(sup_tasks[i], "0", 1) != 1)
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
	static char e_stage[] = "_HUTCH_STAGE=init";
	char e_bundle[4200];
	snprintf(e_bundle, sizeof e_bundle, "_HUTCH_BUNDLE=%s", sup_bundle);
	char *envp[] = {e_stage, e_bundle, NULL};
	const char *name = strrchr(sup_bundle, '/');
	char *argv[] = {"hutch-init", (char *)(name ? name + 1 : sup_bundle), NULL};
	what = "execve /proc/self/fd/3";
	execve("/proc/self/fd/3", argv, envp);
fail:;
	int e = errno;
	int n = snprintf(msg, sizeof msg, "start init: %.400s: %s", what, sup_errstr(e));
	if (n > 0 && write(errw, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0)
		_exit(127);
	_exit(127);
}

// sup_clone starts the container's init stage as startInit does for
// `hutch run` (launch.go), in the same order: the sealed binary,
// the pipes, the network namespace joined around clone(2) with the new
// namespaces' flags (the child inherits the caller's network namespace;
// with a new user namespace it could not join one the host's owns itself),
// the user namespace's maps, then one byte on the sync pipe lets the init
// go on; the error pipe closing at its execve(2) of the workload says it
// started. It returns the init's pid, or -1 with st.error set.
//
// The cgroups are joined otherwise than startInit does. Writing a pid to
// cgroup.procs takes the kernel's global cgroup_threadgroup_rwsem for
// writing, and that percpu rwsem makes its writer wait for an RCU grace
// period (percpu_down_write, rcu_sync_enter): 10 ms of every start here.
// So the init is born in its cgroup2 folder (clone3(2) CLONE_INTO_CGROUP,
// under the read side that every fork takes) and moves itself into each
// v1 hierarchy before it executes anything, by writing "0" to the tasks
// file the supervisor opened for it: a single thread moving itself skips
// the global lock (cgroup_procs_write_start). Only without clone3 or its
// CLONE_INTO_CGROUP (Linux before 5.7, or a seccomp filter refusing them)
// is its pid written to the cgroup2 cgroup.procs.
//
// With into = 0 it does not use CLONE_INTO_CGROUP (see sup_start_init).
// *born_dead says the child was SIGKILLed by the kernel at its birth.
static int sup_clone(int out, int err, int into, int *born_dead) {
	int sync[2] = {-1, -1}, ep[2] = {-1, -1}, up[2] = {-1, -1}, hp[2] = {-1, -1};
	int exe = -1, cfg = -1, netfd = -1, selfnet = -1, cgfd = -1;
	const char *cgprocs = NULL, *late = NULL;
	pid_t pid = -1;
	int released = 1, into_used = 0, unborn = 0;
	*born_dead = 0;
	const char *what = NULL, *arg = "";
	char p[4200];
	st.error[0] = '\0';
	sup_ntasks = 0;
	sup_path(p, sizeof p, "config.json");
	// The init reads its config from this descriptor: opened here as the
	// host's root, as the file may not be readable by the root of a user
	// namespace.
	what = "open";
	arg = p;
	if ((cfg = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	what = "sealed copy of hutch";
	arg = "";
	if ((exe = sup_sealed_exe()) < 0)
		goto fail;
	what = "pipe";
	if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0)
		goto fail;
	for (int i = 0; i < cf.n_cgroup_procs; i++) {
		char dir[4200];
		snprintf(dir, sizeof dir, "%s", cf.cgroup_procs[i]);
		char *slash = strrchr(dir, '/');
		if (slash != NULL)
			*slash = '\0';
		what = "cgroup: open";
		arg = cf.cgroup_procs[i];
		int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct statfs sf;
		if (d < 0 || fstatfs(d, &sf) < 0) {
			if (d >= 0)
				close(d);
			goto fail;
		}
		if (sf.f_type == CGROUP2_SUPER_MAGIC && cgfd < 0) {
			cgfd = d;
			cgprocs = cf.cgroup_procs[i];
			continue;
		}
		close(d);
		if (sf.f_type != CGROUP_SUPER_MAGIC) {
			errno = EINVAL; // a second cgroup2 folder, or no cgroup at all
			goto fail;
		}
		char *t = malloc(strlen(dir) + sizeof "/tasks");
		if (t == NULL)
			goto fail;
		sprintf(t, "%s/tasks", dir);
		sup_tasks_path[sup_ntasks] = t;
		arg = t;
		if ((sup_tasks[sup_ntasks] = open(t, O_WRONLY | O_CLOEXEC)) < 0) {
			free(t);
			goto fail;
		}
		sup_ntasks++;
	}
	if (cf.netns[0]) {
		what = "network namespace";
		arg = cf.netns;
		if ((netfd = open(cf.netns, O_RDONLY | O_CLOEXEC)) < 0)
			goto fail;
		arg = "/proc/self/ns/net";
		if ((selfnet = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
			goto fail;
		what = "setns";
		arg = cf.netns;
		if (setns(netfd, CLONE_NEWNET) < 0)
			goto fail;
	}
	struct {
		uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
	} ca = {.flags = cf.clone_flags, .exit_signal = SIGCHLD};
	if (cgfd >= 0 && into) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)cgfd;
		what = "pipe";
		arg = "";
		if (pipe2(hp, O_CLOEXEC) < 0)
			goto fail;
	} else {
		late = cgprocs;
	}
	into_used = (ca.flags & CLONE_INTO_CGROUP) != 0;
	pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
	// No clone3 (before 5.3, or a seccomp filter that refuses it), or a
	// clone3 without CLONE_INTO_CGROUP (5.3 to 5.6: E2BIG for the larger
	// struct) or refusing it: a plain clone, and the pid written late.
	if (pid < 0 && (errno == ENOSYS || (into_used && (errno == E2BIG || errno == EINVAL || errno == EPERM)))) {
		into_used = 0;
		pid = (pid_t)syscall(SYS_clone, (unsigned long)(cf.clone_flags | SIGCHLD), NULL, NULL, NULL, NULL);
		late = cgprocs;
	}
	if (pid == 0) {
		// The child keeps none of the supervisor's ends of the pipes:
		// should the supervisor die before it writes the maps, the
		// child's read of them ends (EOF) instead of blocking for ever
		// with the supervisor's descriptors (and the spawn stage's
		// report pipe, and so `hutch apply`) held open.
		close(sync[1]);
		close(ep[0]);
		close(up[1]);
		if (hp[0] >= 0)
			close(hp[0]);
		int src[SUP_NFD] = {0, out, err, exe, sync[0], ep[1], cfg};
		sup_init_child(src, up[0], hp[1]);
	}
	int ce = errno;
	if (selfnet >= 0 && setns(selfnet, CLONE_NEWNET) < 0)
		sup_log("back to the host's network namespace: %s", strerror(errno));
	errno = ce;
	what = "clone";
	arg = "";
	if (pid < 0)
		goto fail;
	close(sync[0]);
	close(ep[1]);
	close(up[0]);
	sync[0] = ep[1] = up[0] = -1;
	if (hp[1] >= 0) {
		// Born alive? EOF here is a child that ended before it ran.
		close(hp[1]);
		hp[1] = -1;
		char c;
		ssize_t r;
		while ((r = read(hp[0], &c, 1)) < 0 && errno == EINTR)
			;
		if (r != 1) {
			what = "clone";
			errno = ECHILD;
			released = 0; // it has ended: see how
			unborn = 1;
			goto fail;
		}
	}
	if (cf.clone_flags & CLONE_NEWUSER) {
		char f[64];
		what = "write";
		arg = f;
		snprintf(f, sizeof f, "/proc/%d/uid_map", (int)pid);
		if (cf.uid_map[0] && sup_write_file(f, cf.uid_map) < 0)
			goto fail;
		snprintf(f, sizeof f, "/proc/%d/gid_map", (int)pid);
		if (cf.gid_map[0] && sup_write_file(f, cf.gid_map) < 0)
			goto fail;
		what = "release init";
		arg = "";
		if (write(up[1], "1", 1) != 1) {
			released = 0;
			goto fail;
		}
	}
	if (late != NULL) {
		char num[32];
		snprintf(num, sizeof num, "%d", (int)pid);
		what = "cgroup: write";
		arg = late;
		if (sup_write_file(late, num) < 0)
			goto fail;
	}
	// A child that failed (its tasks files) has closed the sync pipe: the
	// write fails, and the error pipe says why.
	what = "release init";
	arg = "";
	released = write(sync[1], "1", 1) == 1;
	int we = errno;
	// Until the workload runs: EOF, or the init's error.
	size_t got = 0;
	for (;;) {
		ssize_t r = read(ep[0], st.error + got, sizeof st.error - 1 - got);
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
		what = NULL;
	if (got > 0 || !released)
		goto fail;
	goto out;
fail:
	if (what != NULL)
		snprintf(st.error, sizeof st.error, "start init: %s%s%.2048s: %s", what, arg[0] ? " " : "", arg, sup_errstr(errno));
	if (pid > 0) {
		// A child that closed the release pipe has ended (or is ending):
		// see how it ended before any kill of ours could hide it.
		int status = 0;
		pid_t w;
		while ((w = waitpid(pid, &status, released ? WNOHANG : 0)) < 0 && errno == EINTR)
			;
		if (w == pid) {
			// Killed before it said it was alive: the kernel's doing
			// (see sup_start_init), not an OOM kill or a stop later on.
			*born_dead = into_used && unborn && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
		} else {
			kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
	}
	pid = -1;
out:;
	int fds[] = {sync[0], sync[1], ep[0], ep[1], up[0], up[1], hp[0], hp[1], exe, cfg, netfd, selfnet, cgfd};
	for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (int i = 0; i < sup_ntasks; i++) {
		close(sup_tasks[i]);
		free((void *)sup_tasks_path[i]);
	}
	sup_ntasks = 0;
	return pid;
}
// sup_start_init starts the init through sup_clone. The kernel (6.14 on,
// up to at least 6.18) SIGKILLs a child born with CLONE_INTO_CGROUP in a
// cgroup that was ever killed through cgroup.kill: cgroup_css_set_fork
// takes the kill sequence number of the parent's cgroup, not the target's
// (it reads kargs->cgrp before setting it), and cgroup_post_fork sees them
// differ. The driver's KillAll writes cgroup.kill, so a container started
// again in its cgroup meets that: start again without CLONE_INTO_CGROUP,
// and keep to that in this supervisor.
static int sup_start_init(int out, int err) {
	static int no_into;
	int born_dead = 0;
	int pid = sup_clone(out, err, !no_into, &born_dead);
	if (pid < 0 && born_dead) {
		no_into = 1;
		pid = sup_clone(out, err, 0, &born_dead);
	}
	return pid;
}

// sup_start starts the container's init (sup_start_init); 0 on success,
// else st.error says why.
static int sup_start(void) {
	int o[2], e[2];
	if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0) {
		snprintf(st.error, sizeof st.error, "supervisor: pipe: %s", strerror(errno));
		return -1;
	}
	// The count before this run: a rise by its end is an OOM kill in it.
	long long oom = sup_oom_kills();
	int pid = sup_start_init(o[1], e[1]);
	close(o[1]);
	close(e[1]);
	unsigned long long pstart = pid > 0 ? sup_start_time(pid) : 0;
	if (pid > 0 && pstart == 0) {
		snprintf(st.error, sizeof st.error, "start init: read /proc/%d/stat: %s", pid, sup_errstr(errno));
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		pid = -1;
	}
	if (pid <= 0) {
		close(o[0]);
		close(e[0]);
		return -1;
	}
	// Non-blocking: the last read after the init ended must not wait for
	// a writer that never closes.
	fcntl(o[0], F_SETFL, O_NONBLOCK);
	fcntl(e[0], F_SETFL, O_NONBLOCK);
	sup_out.fd = o[0];
	sup_err.fd = e[0];
	sup_oom_before = sup_oom_seen = oom;
	st.pid = pid;
	st.pid_start = pstart;
	st.status = "running";
	clock_gettime(CLOCK_REALTIME, &st.started);
	sup_started_mono = sup_now(CLOCK_MONOTONIC);
	st.finished.tv_sec = st.finished.tv_nsec = 0;
	st.exit_code = 0;
	st.signal[0] = '\0';
	st.oom = 0;
	st.error[0] = '\0';
	sup_health_start_run(pid, sup_started_mono);
	// The event first: whoever sees the state has its event to read.
	sup_event(&(struct sup_event){.type = "start", .time = st.started, .pid = pid});
	sup_save();
	return 0;
}

static int sup_should_restart(void) {
	if (strcmp(cf.restart, "always") == 0)
		return 1;
	if (strcmp(cf.restart, "on-failure") == 0) {
		if (st.exit_code == 0 && st.signal[0] == '\0')
			return 0;
		return cf.max_retries == 0 || st.restarts < cf.max_retries;
	}
	return 0;
}

// sup_backoff: 100 ms doubling to at most 30 s; a run of 10 s or more
// starts over.
static long long sup_backoff(int n, long long ran_ns) {
	long long d = 100000000LL;
	if (ran_ns >= 10000000000LL)
		return d;
	for (int i = 0; i < n && d < 30000000000LL; i++)
		d *= 2;
	return d < 30000000000LL ? d : 30000000000LL;
}

static void sup_record_exit(int status) {
	int pid = st.pid;
	clock_gettime(CLOCK_REALTIME, &st.finished);
	st.pid = 0;
	st.pid_start = 0;
	st.exit_code = -1;
	st.signal[0] = '\0';
	if (WIFEXITED(status)) {
		st.exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		st.exit_code = 128 + WTERMSIG(status);
		const char *abbr = sigabbrev_np(WTERMSIG(status));
		if (abbr != NULL)
			snprintf(st.signal, sizeof st.signal, "SIG%s", abbr);
	}
	// The cgroup's OOM kill count: a rise during this run means the OOM
	// killer struck. The kernel counts the kill before it sends SIGKILL
	// (__oom_kill_process), so the count is final here.
	long long n = sup_oom_kills();
	if (sup_oom_before >= 0 && n > sup_oom_before)
		st.oom = 1;
	// Not reported yet (sup_oom_check): the kill of the process itself,
	// most often, whose SIGCHLD came with the notification.
	if (sup_oom_seen >= 0 && n > sup_oom_seen) {
		char msg[128];
		snprintf(msg, sizeof msg, "the OOM killer killed %lld process(es) of the container", n - sup_oom_seen);
		sup_event(&(struct sup_event){.type = "oom", .time = st.finished, .pid = pid, .message = msg});
	}
	if (n >= 0)
		sup_oom_seen = n;
	sup_event(&(struct sup_event){.type = "exit", .time = st.finished, .pid = pid, .exit_code = &st.exit_code, .signal = st.signal});
}

// sup_start_failed records a restart that failed (st.error says why) as a
// failed run: exit status 127, as a shell gives for a command it could not
// run.
static void sup_start_failed(void) {
	st.exit_code = 127;
	st.signal[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &st.finished);
	sup_event(&(struct sup_event){.type = "exit", .time = st.finished, .exit_code = &st.exit_code, .message = st.error});
}

// sup_catches says whether pid has a handler for sig (the SigCgt mask of
// /proc/PID/status). The kernel discards a signal sent from outside to the
// first process of a pid namespace when that process keeps the default
// action (pid_namespaces(7)): python's server, like most programs, has no
// SIGTERM handler, so waiting the stop timeout for it would be time lost.
static int sup_catches(pid_t pid, int sig) {
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 1; // unknown: wait, as before
	int caught = 1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "SigCgt:", 7) == 0) {
			unsigned long long mask = strtoull(line + 7, NULL, 16);
			caught = (mask >> (sig - 1)) & 1;
			break;
		}
	}
	fclose(f);
	return caught;
}

static long long sup_stop_timeout(void) {
	char p[4200], buf[64];
	sup_path(p, sizeof p, "stop");
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			return atoll(buf); // a request may ask for 0: SIGKILL at once
		}
	}
	return cf.stop_timeout_ns > 0 ? cf.stop_timeout_ns : 10000000000LL;
}

static int sup_main(void) {
	int ready = 3;
	fcntl(ready, F_SETFD, FD_CLOEXEC);
	snprintf(sup_bundle, sizeof sup_bundle, "%s", getenv("_HUTCH_BUNDLE") ? getenv("_HUTCH_BUNDLE") : "");
	snprintf(sup_logpath, sizeof sup_logpath, "%s/logs/container.log", sup_bundle);
	if (sup_read_conf() < 0) {
		dprintf(ready, "{\"error\":\"supervisor: read %s/supervisor.conf: %s\"}\n", sup_bundle, strerror(errno));
		return 1;
	}
	sup_events_open(sup_bundle, cf.container);
	sup_oom_watch();
	char dir[4200];
	sup_path(dir, sizeof dir, "logs");
	mkdir(dir, 0700);
	sup_open_log();
	if (sup_logfd < 0) {
		dprintf(ready, "{\"error\":\"supervisor: log %s: %s\"}\n", sup_logpath, strerror(errno));
		return 1;
	}
	// The container's init is our child (sup_clone); as a subreaper we also
	// get, and reap, whatever a container without its own pid namespace
	// leaves behind when its parent ends.
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &sup_oldmask);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	st.sup_pid = getpid();
	st.sup_start = sup_start_time(st.sup_pid);
	st.status = "created";
	sup_save();
	if (sup_start() < 0) {
		st.status = "failed";
		clock_gettime(CLOCK_REALTIME, &st.finished);
		int code = 127; // a start that fails counts as a run that exits 127
		sup_event(&(struct sup_event){.type = "exit", .time = st.finished, .exit_code = &code, .message = st.error});
		sup_save();
		FILE *f = fdopen(ready, "w");
		fprintf(f, "{\"error\":");
		sup_json_str(f, st.error);
		fprintf(f, "}\n");
		fclose(f);
		return 1;
	}
	dprintf(ready, "{\"pid\":%d}\n", st.pid);
	// Close the report pipe by putting /dev/null in its place: descriptor
	// 3 stays taken, so no pipe made later lands on it (a descriptor the
	// init finds, though sup_init_child moves its own out of the way).
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0 && nul != ready) {
		dup3(nul, ready, O_CLOEXEC);
		close(nul);
	}

	int init_status = 0, init_done = 0, stopping = 0;
	long long kill_at = -1, restart_at = -1, close_at = -1;
	for (;;) {
		struct pollfd pf[5];
		int n = 0;
		pf[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		int io = n;
		if (sup_out.fd >= 0)
			pf[n++] = (struct pollfd){.fd = sup_out.fd, .events = POLLIN};
		if (sup_err.fd >= 0)
			pf[n++] = (struct pollfd){.fd = sup_err.fd, .events = POLLIN};
		int io_end = n, hpf = -1, opf = -1;
		if (sup_health_pollfd(&pf[n]))
			hpf = n++;
		if (sup_oom_fd >= 0) {
			opf = n;
			pf[n++] = (struct pollfd){.fd = sup_oom_fd, .events = POLLIN};
		}
		long long now = sup_now(CLOCK_MONOTONIC), next = -1;
		long long deadlines[5] = {kill_at, restart_at, close_at, sup_health_deadline(), sup_oom_recheck_at};
		for (int i = 0; i < 5; i++)
			if (deadlines[i] >= 0 && (next < 0 || deadlines[i] < next))
				next = deadlines[i];
		int timeout = next < 0 ? -1 : (next <= now ? 0 : (int)((next - now) / 1000000 + 1));
		if (poll(pf, n, timeout) < 0 && errno != EINTR)
			return 1;
		for (int i = io; i < io_end; i++) {
			if (pf[i].revents == 0)
				continue;
			struct sup_stream *s = pf[i].fd == sup_out.fd ? &sup_out : &sup_err;
			if (sup_drain(s) == 0)
				sup_close_stream(s);
		}
		if (opf >= 0 && (pf[opf].revents & POLLIN))
			sup_oom_notified();
		if (sup_oom_recheck_at >= 0 && sup_now(CLOCK_MONOTONIC) >= sup_oom_recheck_at) {
			sup_oom_recheck_at = -1;
			sup_oom_check();
		}
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGHUP) {
					if (sup_read_conf() == 1)
						sup_health_reload();
				} else if (si.ssi_signo != SIGCHLD && !stopping) {
					stopping = 1;
					const char *abbr = sigabbrev_np((int)si.ssi_signo);
					char msg[64];
					snprintf(msg, sizeof msg, "stop asked for (SIG%s to the supervisor)", abbr ? abbr : "?");
					sup_event(&(struct sup_event){.type = "stop", .pid = st.pid, .message = msg});
					sup_health_end_run();
					if (st.pid <= 0 && !init_done) {
						st.status = "stopped";
						clock_gettime(CLOCK_REALTIME, &st.finished);
						sup_save();
						return 0;
					}
					st.status = "stopping";
					sup_save();
					if (!init_done) {
						kill(st.pid, cf.stop_signal);
						kill_at = sup_now(CLOCK_MONOTONIC) + sup_stop_timeout();
						// A pid 1 that does not catch the signal gets
						// SIGKILL at once, from here: the kernel then kills
						// the rest of its pid namespace. The cgroup-wide kill
						// (a Go helper, a whole Go start on the path of every
						// delete) stays for the timeout, should the init
						// outlive it; what is left in the cgroup of a
						// container without its own pid namespace is killed
						// by the driver's Stop once this supervisor exits.
						if (!sup_catches(st.pid, cf.stop_signal))
							kill(st.pid, SIGKILL);
					}
				}
				// Short reads cannot happen; stop after the pending ones.
				struct pollfd again = {.fd = sfd, .events = POLLIN};
				if (poll(&again, 1, 0) <= 0)
					break;
			}
		}
		// Reap every child that ended (helpers are waited for by
		// sup_helper; this catches the init and anything re-parented).
		for (;;) {
			int status;
			pid_t w = waitpid(-1, &status, WNOHANG);
			if (w <= 0)
				break;
			if (w == st.pid && !init_done) {
				init_done = 1;
				init_status = status;
				sup_health_end_run();
				// Its output may still sit in the pipes: read them to
				// their end (bounded, should something else hold them).
				close_at = sup_now(CLOCK_MONOTONIC) + 2000000000LL;
			} else {
				sup_health_reaped(w, status);
			}
		}
		now = sup_now(CLOCK_MONOTONIC);
		sup_health_step(hpf >= 0 ? pf[hpf].revents : 0, now);
		if (kill_at >= 0 && now >= kill_at) {
			// The stop timeout passed: SIGKILL every process of the cgroup
			// (a Go helper through the cgroup driver), and the init.
			sup_helper("cgroup-kill");
			if (!init_done)
				kill(st.pid, SIGKILL);
			kill_at = -1;
		}
		if (init_done && ((sup_out.fd < 0 && sup_err.fd < 0) || now >= close_at)) {
			sup_close_stream(&sup_out);
			sup_close_stream(&sup_err);
			sup_record_exit(init_status);
			init_done = 0;
			close_at = -1;
			kill_at = -1;
			long long ran = now - sup_started_mono;
			if (stopping) {
				st.status = "stopped";
				sup_save();
				return 0;
			}
			if (!sup_should_restart()) {
				st.status = "exited";
				sup_save();
				return 0;
			}
			st.status = "restarting";
			sup_save();
			restart_at = now + sup_backoff(st.restarts, ran);
		}
		if (restart_at >= 0 && now >= restart_at) {
			restart_at = -1;
			st.restarts++;
			char msg[32];
			snprintf(msg, sizeof msg, "restart %d", st.restarts);
			sup_event(&(struct sup_event){.type = "restart", .message = msg});
			if (sup_start() < 0) {
				// A start that fails counts as a failed run.
				sup_start_failed();
				if (!sup_should_restart()) {
					st.status = "failed";
					sup_save();
					return 1;
				}
				sup_save();
				restart_at = sup_now(CLOCK_MONOTONIC) + sup_backoff(st.restarts, 0);
			}
		}
	}
}

// sup_spawn is the spawn stage, in C: in Go it would be a Go process
// start (3-4 ms of runtime and package initialisation) on every container
// start only to fork once. The driver started it with setsid(2);
// it starts the supervisor (fork and execve, so that the supervisor's
// /proc/PID/environ names its stage and bundle), passes its first report on
// to stdout and exits, leaving the supervisor to init or the subreaper.
static int sup_spawn(void) {
	const char *bundle = getenv("_HUTCH_BUNDLE");
	if (bundle == NULL)
		bundle = "";
	// Descriptors that whoever ran hutch held without O_CLOEXEC end here.
	syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
	char p[4200];
	snprintf(p, sizeof p, "%s/supervisor.log", bundle);
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0) {
		printf("{\"error\":\"supervisor: pipe: %s\"}\n", strerror(errno));
		return 1;
	}
	int errlog = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (errlog < 0) {
		printf("{\"error\":");
		char msg[4400];
		snprintf(msg, sizeof msg, "supervisor: open %s: %s", p, strerror(errno));
		sup_json_str(stdout, msg);
		printf("}\n");
		return 1;
	}
	static char e_stage[] = "_HUTCH_STAGE=supervisor", e_gmp[] = "GOMAXPROCS=1";
	char e_bundle[4200];
	snprintf(e_bundle, sizeof e_bundle, "_HUTCH_BUNDLE=%s", bundle);
	char *envp[] = {e_stage, e_bundle, e_gmp, NULL};
	const char *name = strrchr(bundle, '/');
	char *argv[] = {"hutch-supervisor", (char *)(name ? name + 1 : bundle), NULL};
	fflush(stdout);
	pid_t c = fork();
	if (c < 0) {
		printf("{\"error\":\"supervisor: start: fork: %s\"}\n", strerror(errno));
		return 1;
	}
	if (c == 0) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(errlog, 2) < 0 || dup2(pp[1], 3) < 0 || chdir("/") < 0)
			_exit(127);
		execve("/proc/self/exe", argv, envp);
		_exit(127);
	}
	close(pp[1]);
	close(errlog);
	char buf[8192];
	size_t got = 0;
	for (;;) {
		ssize_t r = read(pp[0], buf + got, sizeof buf - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
		if (got == sizeof buf)
			break;
	}
	if (got == 0) {
		printf("{\"error\":");
		char msg[4400];
		snprintf(msg, sizeof msg, "supervisor: ended without a report (see %s)", p);
		sup_json_str(stdout, msg);
		printf("}\n");
		return 1;
	}
	fwrite(buf, 1, got, stdout);
	return 0;
}

__attribute__((constructor)) static void hutch_supervisor(void) {
	const char *stage = getenv("_HUTCH_STAGE");
	if (stage != NULL && strcmp(stage, "spawn") == 0) {
		prctl(PR_SET_NAME, "hutch-spawn", 0, 0, 0);
		int rc = sup_spawn();
		fflush(stdout);
		_exit(rc);
	}
	if (stage == NULL || strcmp(stage, "supervisor") != 0)
		return;
	prctl(PR_SET_NAME, "hutch-supervisor", 0, 0, 0);
	fflush(stderr);
	_exit(sup_main());
}
