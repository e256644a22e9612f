//go:build linux && cgo

// Health checks of the supervisor, run from supervisor.c's poll(2) loop
// (health.go says what the checks, their schedule and states are).
// Nothing here blocks the loop, which goes on reading the container's logs
// and signals while a check runs:
//
//   - tcp and http: a non-blocking socket, made in the container's network
//     namespace (setns(2) to /proc/PID/ns/net of the init, which is this
//     process's child and so cannot be another process, only for
//     socket(2): a socket keeps the namespace it was made in), connects to
//     127.0.0.1:PORT; the loop waits for it with poll(2) (POLLOUT for the
//     connect and the request, POLLIN for the answer) until the timeout.
//   - exec: a child of this process, in a session and process group of its
//     own, writes its pid to the container's cgroup.procs files and
//     executes the sealed hutch binary as the exec stage of `hutch exec`
//     (nsenter.c joins every namespace of the init through a pidfd, then
//     the "health" stage takes the container's user, capabilities,
//     no_new_privs, rlimits and seccomp filter and executes the command).
//     Its stdout and stderr are one pipe the loop reads (4 KiB kept, the
//     rest read and dropped), stdin is /dev/null. The loop reaps it; at the
//     timeout its process group gets SIGKILL.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/close_range.h>
#include <unistd.h>

#include "supervisor.h"

#define HC_LOG HUTCH_HEALTH_LOG_SIZE
#define HC_OUT HUTCH_HEALTH_OUTPUT_MAX
#define HC_ARGS HUTCH_HEALTH_MAX_ARGS // what writeConf lets through
#define HC_ARGBUF HUTCH_HEALTH_MAX_ARG_BYTES
#define HC_DRAIN (64 << 10) // of an HTTP answer's body, read before closing

enum { HC_NONE, HC_TCP, HC_HTTP, HC_EXEC };

// The check, from supervisor.conf's health_* lines (writeConf).
struct hc_conf {
	int kind;
	int port;
	char path[1100];
	// The command's arguments, each ended by a NUL: from the heap, and
	// only for an exec check (the supervisor's memory counts).
	char *args;
	size_t args_len;
	int nargs;
	long long interval, start_interval, timeout, start_period; // ns
	long retries;
};
static struct hc_conf hc, hc_prev;

// One check's result (HealthResult in state.go).
struct hc_result {
	struct timespec start, end;
	int passed, exit_code;
	char output[HC_OUT + 1];
	size_t outlen;
};

static struct {
	// The health state (Health in state.go); status NULL: none.
	const char *status;
	int streak;
	struct hc_result log[HC_LOG];
	int nlog;
	// The run being checked: the init's pid and start (CLOCK_MONOTONIC).
	int running, pid;
	long long started;
	long long next_at; // the next check, -1 for none
	// The check in flight.
	int busy;
	long long begun, deadline;
	int fd;	     // the socket (tcp, http) or the output pipe (exec)
	pid_t child; // exec: the check's process, leader of its group
	struct hc_result cur;
	// http: the request and how much of it went, the answer's first line
	// and how much of the rest was read.
	int connected;
	char req[1300];
	size_t reqlen, reqoff;
	char resp[1024];
	size_t resplen;
	int have_status;
	long drained;
} hs = {.next_at = -1, .fd = -1};

// sup_health_conf_begin comes before supervisor.conf is read: the check
// it held is kept to compare (sup_health_conf_end).
void sup_health_conf_begin(void) {
	free(hc_prev.args);
	hc_prev = hc;
	memset(&hc, 0, sizeof hc);
}

// hc_unescape undoes confEscaper (conf.go): \n is a newline, \\ a
// backslash. It returns the length written to dst (at most n - 1).
static size_t hc_unescape(char *dst, size_t n, const char *s) {
	size_t k = 0;
	for (; *s && k + 1 < n; s++) {
		if (*s == '\\' && s[1] == 'n') {
			dst[k++] = '\n';
			s++;
		} else if (*s == '\\' && s[1] == '\\') {
			dst[k++] = '\\';
			s++;
		} else {
			dst[k++] = *s;
		}
	}
	dst[k] = '\0';
	return k;
}

// sup_health_conf takes one line of supervisor.conf; 0 when the key is
// not the health check's.
int sup_health_conf(const char *k, const char *v) {
	if (strcmp(k, HUTCH_KEY_HEALTH_KIND) == 0)
		hc.kind = strcmp(v, "tcp") == 0 ? HC_TCP : strcmp(v, "http") == 0 ? HC_HTTP : strcmp(v, "exec") == 0 ? HC_EXEC : HC_NONE;
	else if (strcmp(k, HUTCH_KEY_HEALTH_PORT) == 0)
		hc.port = atoi(v);
	else if (strcmp(k, HUTCH_KEY_HEALTH_PATH) == 0)
		snprintf(hc.path, sizeof hc.path, "%s", v);
	else if (strcmp(k, HUTCH_KEY_HEALTH_INTERVAL_NS) == 0)
		hc.interval = atoll(v);
	else if (strcmp(k, HUTCH_KEY_HEALTH_START_INTERVAL_NS) == 0)
		hc.start_interval = atoll(v);
	else if (strcmp(k, HUTCH_KEY_HEALTH_TIMEOUT_NS) == 0)
		hc.timeout = atoll(v);
	else if (strcmp(k, HUTCH_KEY_HEALTH_START_PERIOD_NS) == 0)
		hc.start_period = atoll(v);
	else if (strcmp(k, HUTCH_KEY_HEALTH_RETRIES) == 0)
		hc.retries = atol(v);
	else if (strcmp(k, HUTCH_KEY_HEALTH_ARG) == 0) {
		if (hc.args == NULL && (hc.args = malloc(HC_ARGBUF)) == NULL)
			return 1;
		if (hc.nargs < HC_ARGS && hc.args_len < HC_ARGBUF) {
			hc.args_len += hc_unescape(hc.args + hc.args_len, HC_ARGBUF - hc.args_len, v) + 1;
			hc.nargs++;
		}
	} else
		return 0;
	return 1;
}

// sup_health_conf_end says whether the check changed since
// sup_health_conf_begin.
int sup_health_conf_end(void) {
	// A duration of 0 would make the loop spin (the driver never writes
	// one: spec.healthCheck's durations are above 0).
	long long *d[] = {&hc.interval, &hc.start_interval, &hc.timeout};
	for (unsigned i = 0; i < sizeof d / sizeof d[0]; i++)
		if (*d[i] <= 0)
			*d[i] = 1000000;
	if (hc.retries < 1)
		hc.retries = 1;
	const struct hc_conf *a = &hc, *b = &hc_prev;
	return a->kind != b->kind || a->port != b->port || strcmp(a->path, b->path) != 0 || a->interval != b->interval ||
	       a->start_interval != b->start_interval || a->timeout != b->timeout || a->start_period != b->start_period ||
	       a->retries != b->retries || a->nargs != b->nargs || a->args_len != b->args_len ||
	       (a->args_len > 0 && memcmp(a->args, b->args, a->args_len) != 0);
}

// sup_fmt_duration writes ns as Go's time.Duration prints the round ones:
// 3s, 250ms, 1.5s.
static void sup_fmt_duration(char *buf, size_t n, long long ns) {
	if (ns % 1000000000LL == 0)
		snprintf(buf, n, "%llds", ns / 1000000000LL);
	else if (ns < 1000000000LL && ns % 1000000LL == 0)
		snprintf(buf, n, "%lldms", ns / 1000000LL);
	else
		snprintf(buf, n, "%.9gs", (double)ns / 1e9);
}

// hc_say appends text to the check's output, cut at HC_OUT bytes.
static void hc_say(const char *text, size_t len) {
	struct hc_result *r = &hs.cur;
	if (len > HC_OUT - r->outlen)
		len = HC_OUT - r->outlen;
	memcpy(r->output + r->outlen, text, len);
	r->outlen += len;
	r->output[r->outlen] = '\0';
}

// hc_vsayf appends a line of its own (after a newline when output came
// before).
static void hc_vsayf(const char *fmt, va_list ap) {
	char line[1600];
	int n = snprintf(line, sizeof line, "%s", hs.cur.outlen > 0 && hs.cur.output[hs.cur.outlen - 1] != '\n' ? "\n" : "");
	n += vsnprintf(line + n, sizeof line - n, fmt, ap);
	hc_say(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

// hc_close ends what the check in flight holds: its descriptor, and an
// exec check's process group (SIGKILL; the loop reaps it as any child).
static void hc_close(void) {
	if (hs.fd >= 0)
		close(hs.fd);
	hs.fd = -1;
	if (hs.child > 0) {
		// The group, and the child itself should it not have made its
		// group yet (setsid(2) is the first thing it does).
		kill(-hs.child, SIGKILL);
		kill(hs.child, SIGKILL);
	}
	hs.child = 0;
	hs.busy = 0;
}

// hc_finish records the result of the check in flight: the state (saved
// after every check), an event when the status changed, the next check.
static void hc_finish(int passed, int exit_code, long long now) {
	hc_close();
	struct hc_result *r = &hs.cur;
	clock_gettime(CLOCK_REALTIME, &r->end);
	r->passed = passed;
	r->exit_code = exit_code;
	if (hs.nlog == HC_LOG) {
		memmove(&hs.log[0], &hs.log[1], sizeof hs.log[0] * (HC_LOG - 1));
		hs.nlog--;
	}
	hs.log[hs.nlog++] = *r;
	if (hs.status == NULL)
		hs.status = "starting";
	const char *before = hs.status;
	if (passed) {
		hs.status = "healthy";
		hs.streak = 0;
	} else if (hs.begun - hs.started >= hc.start_period) {
		// A failure in the start period is logged, not counted.
		hs.streak++;
		if (hs.streak >= hc.retries)
			hs.status = "unhealthy";
	}
	// The event first: whoever sees the state has its event to read.
	if (strcmp(hs.status, before) != 0)
		sup_event(&(struct sup_event){.type = "health", .pid = hs.pid, .health = hs.status, .message = r->output});
	sup_save();
	hs.next_at = now + (strcmp(hs.status, "starting") == 0 ? hc.start_interval : hc.interval);
}

// hc_fail ends the check in flight as failed, saying why: the exit code
// is -1 for an exec check (its command did not run, or was killed), 1 for
// tcp and http.
__attribute__((format(printf, 2, 3))) static void hc_fail(long long now, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	hc_vsayf(fmt, ap);
	va_end(ap);
	hc_finish(0, hc.kind == HC_EXEC ? -1 : 1, now);
}

// hc_connect makes the socket of a tcp or http check in the container's
// network namespace and starts connecting it to 127.0.0.1:PORT.
static void hc_connect(long long now) {
	char p[64], addr[32];
	snprintf(p, sizeof p, "/proc/%d/ns/net", hs.pid);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", hc.port);
	int ns = open(p, O_RDONLY | O_CLOEXEC);
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int s = -1, e = 0;
	const char *what = "network namespace";
	if (ns >= 0 && self >= 0) {
		what = "setns";
		if (setns(ns, CLONE_NEWNET) == 0) {
			what = "socket";
			s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			e = errno;
			if (setns(self, CLONE_NEWNET) < 0)
				sup_log("back to the host's network namespace: %s", sup_errstr(errno));
		} else {
			e = errno;
		}
	} else {
		e = errno;
	}
	if (ns >= 0)
		close(ns);
	if (self >= 0)
		close(self);
	if (s < 0) {
		hc_fail(now, "health check: %s: %s", what, sup_errstr(e));
		return;
	}
	hs.fd = s;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hc.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
		hc_fail(now, "connect %s: %s", addr, sup_errstr(errno));
		return;
	}
	// Connected or on the way: poll(2) says when it is writable.
}

// hc_http_status reads the code of an HTTP status line ("HTTP/1.0 200
// OK"); -1 when it is none.
static int hc_http_status(const char *line) {
	if (strncmp(line, "HTTP/", 5) != 0)
		return -1;
	const char *sp = strchr(line, ' ');
	if (sp == NULL || sp[1] < '0' || sp[1] > '9' || sp[2] < '0' || sp[2] > '9' || sp[3] < '0' || sp[3] > '9' ||
	    (sp[4] != ' ' && sp[4] != '\0'))
		return -1;
	return (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
}

// hc_socket_io goes on with a tcp or http check whose socket poll(2)
// reported.
static void hc_socket_io(short revents, long long now) {
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", hc.port);
	if (!hs.connected) {
		int err = 0;
		socklen_t l = sizeof err;
		if (getsockopt(hs.fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err != 0) {
			hc_fail(now, "connect %s: %s", addr, sup_errstr(err));
			return;
		}
		if (!(revents & POLLOUT))
			return;
		hs.connected = 1;
		if (hc.kind == HC_TCP) {
			hc_finish(1, 0, now);
			return;
		}
		int n = snprintf(hs.req, sizeof hs.req, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: hutch-health\r\nConnection: close\r\n\r\n", hc.path, addr);
		hs.reqlen = (size_t)n < sizeof hs.req ? (size_t)n : sizeof hs.req - 1;
	}
	char url[1200];
	snprintf(url, sizeof url, "http://%s%s", addr, hc.path);
	while (hs.reqoff < hs.reqlen) {
		ssize_t n = send(hs.fd, hs.req + hs.reqoff, hs.reqlen - hs.reqoff, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			hc_fail(now, "GET %s: %s", url, sup_errstr(errno));
			return;
		}
		hs.reqoff += (size_t)n;
	}
	// The answer: its first line, then the rest read (bounded) before the
	// close, since a close with unread data sends a reset, which the
	// server may log as an error.
	for (;;) {
		char buf[4096];
		ssize_t n = read(hs.fd, buf, sizeof buf);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			hc_fail(now, "GET %s: %s", url, sup_errstr(errno));
			return;
		}
		if (hs.have_status) {
			hs.drained += n;
			if (n == 0 || hs.drained > HC_DRAIN)
				break;
			continue;
		}
		if (n == 0 && hs.resplen == 0) {
			hc_fail(now, "GET %s: the connection closed without an answer", url);
			return;
		}
		size_t room = sizeof hs.resp - 1 - hs.resplen, k = (size_t)n < room ? (size_t)n : room;
		memcpy(hs.resp + hs.resplen, buf, k);
		hs.resplen += k;
		hs.resp[hs.resplen] = '\0';
		char *nl = strchr(hs.resp, '\n');
		if (nl == NULL && n > 0 && hs.resplen < sizeof hs.resp - 1)
			continue; // the first line is not whole yet
		if (nl != NULL)
			*nl = '\0';
		hs.resp[strcspn(hs.resp, "\r")] = '\0';
		hs.have_status = 1;
		if (hc_http_status(hs.resp) < 0) {
			hc_fail(now, "GET %s: not an HTTP response: %s", url, hs.resp);
			return;
		}
		if (n == 0)
			break;
	}
	int code = hc_http_status(hs.resp);
	hc_say(hs.resp, strlen(hs.resp));
	hc_finish(code >= 200 && code <= 399, code >= 200 && code <= 399 ? 0 : 1, now);
}

// hc_ns_flags returns the CLONE_NEW* flags of the namespaces of pid that
// nsenter.c joins, as initNamespaces (exec.go) works them out: the user
// namespace only when it is not this process's (setns(2) refuses to
// re-enter one's own), and never a mount namespace that is this process's
// (the command would run on the host's root). -1 with *what set on error.
static int hc_ns_flags(int pid, const char **what) {
	static const struct {
		const char *name;
		int flag;
	} nss[] = {{"cgroup", CLONE_NEWCGROUP}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET},
		   {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS}, {"user", CLONE_NEWUSER}};
	int flags = 0;
	for (unsigned i = 0; i < sizeof nss / sizeof nss[0]; i++) {
		char p[64], own[64];
		struct stat in, self;
		snprintf(p, sizeof p, "/proc/%d/ns/%s", pid, nss[i].name);
		snprintf(own, sizeof own, "/proc/self/ns/%s", nss[i].name);
		*what = p;
		if (stat(p, &in) < 0) {
			if (errno == ENOENT && nss[i].flag != CLONE_NEWNS)
				continue; // the kernel lacks this namespace type
			return -1;
		}
		*what = own;
		if (stat(own, &self) < 0)
			return -1;
		int same = in.st_dev == self.st_dev && in.st_ino == self.st_ino;
		if (same && nss[i].flag == CLONE_NEWUSER)
			continue;
		if (same && nss[i].flag == CLONE_NEWNS) {
			*what = "the init's mount namespace is the supervisor's: refusing to join it";
			errno = EPERM;
			return -1;
		}
		flags |= nss[i].flag;
	}
	return flags;
}

// The descriptors of the exec stage (protocol.h): 0 /dev/null, 1 and 2 the
// output pipe, 3 the sealed binary, 4 nsenter.c's go-ahead, 5 config.json,
// 6 the pidfd of the init.
enum {
	HC_FD_IN,
	HC_FD_OUT,
	HC_FD_ERR,
	HC_FD_EXE = HUTCH_EXEC_FD_EXE,
	HC_FD_SYNC = HUTCH_EXEC_FD_SYNC,
	HC_FD_CONFIG = HUTCH_EXEC_FD_CONFIG,
	HC_FD_PIDFD = HUTCH_EXEC_FD_PIDFD,
	HC_NFD
};
// hc_exec_child places 0 to HC_NFD - 1, each once.
_Static_assert(HC_FD_EXE == 3 && HC_FD_SYNC == 4 && HC_FD_CONFIG == 5 && HC_FD_PIDFD == 6, "the exec stage's descriptors are 3 to 6");

// hc_exec_child runs in the child of hc_spawn until it executes the exec
// stage; a failure is written to the output pipe, and it exits 126.
static void hc_exec_child(const int src[HC_NFD], unsigned long flags) {
	const char *what = "setsid";
	sigprocmask(SIG_SETMASK, &sup_oldmask, NULL);
	signal(SIGPIPE, SIG_DFL);
	// A session without a terminal (as `hutch exec`), and a process group
	// the timeout kills whole.
	if (setsid() < 0)
		goto fail;
	// Into the container's cgroup before nsenter.c joins its namespaces.
	// Writing its own pid takes the kernel's cgroup_threadgroup_rwsem and
	// its RCU grace period (see sup_clone) in this child, not in the loop.
	what = "join the container's cgroup";
	if (sup_join_cgroups() < 0)
		goto fail;
	int tmp[HC_NFD];
	what = "place descriptors";
	for (int i = 0; i < HC_NFD; i++)
		if ((tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, HC_NFD + 3)) < 0)
			goto fail;
	for (int i = 0; i < HC_NFD; i++)
		if (dup2(tmp[i], i) < 0)
			goto fail;
	syscall(SYS_close_range, HC_NFD, ~0U, CLOSE_RANGE_CLOEXEC);
	static char e_stage[] = HUTCH_ENV_STAGE "=" HUTCH_STAGE_HEALTH;
	char e_ns[64];
	snprintf(e_ns, sizeof e_ns, HUTCH_ENV_NSENTER "=%d:%d:%lu", HC_FD_PIDFD, HC_FD_SYNC, flags);
	char *envp[] = {e_stage, e_ns, NULL};
	char *argv[HC_ARGS + 2];
	int n = 0;
	argv[n++] = "hutch-" HUTCH_STAGE_HEALTH;
	for (size_t off = 0; off < hc.args_len && n <= HC_ARGS; off += strlen(hc.args + off) + 1)
		argv[n++] = hc.args + off;
	argv[n] = NULL;
	what = "execve /proc/self/fd/" SUP_STR(HUTCH_EXEC_FD_EXE);
	execve("/proc/self/fd/" SUP_STR(HUTCH_EXEC_FD_EXE), argv, envp);
fail:;
	char msg[256];
	int k = snprintf(msg, sizeof msg, "health check: %s: %s\n", what, sup_errstr(errno));
	if (k > 0 && write(src[HC_FD_OUT], msg, (size_t)k < sizeof msg ? (size_t)k : sizeof msg - 1) < 0)
		_exit(126);
	_exit(126);
}

// hc_spawn starts an exec check: a pidfd of the init and its namespaces,
// the sealed binary, config.json, the pipes, and the child.
static void hc_spawn(long long now) {
	int pidfd = -1, exe = -1, cfg = -1, nul = -1, out[2] = {-1, -1}, sync[2] = {-1, -1};
	const char *what = "pidfd_open", *arg = "";
	char p[4200];
	int flags = -1;
	pidfd = (int)syscall(SYS_pidfd_open, hs.pid, 0);
	if (pidfd < 0)
		goto fail;
	what = "namespace";
	if ((flags = hc_ns_flags(hs.pid, &arg)) < 0)
		goto fail;
	what = "sealed copy of hutch";
	arg = "";
	if ((exe = sup_sealed_exe()) < 0)
		goto fail;
	sup_path(p, sizeof p, HUTCH_SPEC_FILE);
	what = "open";
	arg = p;
	if ((cfg = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	arg = "/dev/null";
	if ((nul = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	what = "pipe";
	arg = "";
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(sync, O_CLOEXEC) < 0)
		goto fail;
	// nsenter.c waits for one byte on its sync descriptor; the child has
	// joined the cgroup by itself before it executes the stage.
	if (write(sync[1], "1", 1) != 1)
		goto fail;
	what = "fork";
	pid_t c = fork();
	if (c < 0)
		goto fail;
	if (c == 0) {
		int src[HC_NFD] = {nul, out[1], out[1], exe, sync[0], cfg, pidfd};
		hc_exec_child(src, (unsigned long)flags);
	}
	hs.child = c;
	hs.fd = out[0];
	out[0] = -1;
	fcntl(hs.fd, F_SETFL, O_NONBLOCK);
	what = NULL;
fail:;
	int e = errno;
	int fds[] = {pidfd, exe, cfg, nul, out[0], out[1], sync[0], sync[1]};
	for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (what != NULL) {
		char msg[4400];
		snprintf(msg, sizeof msg, "%s%s%s", what, arg[0] ? " " : "", arg);
		hc_fail(now, "health check: %s: %s", msg, sup_errstr(e));
	}
}

// hc_read_output reads what an exec check wrote so far (kept up to HC_OUT
// bytes, the rest dropped so that the command never blocks on the pipe).
// 0 at its end.
static int hc_read_output(void) {
	// Bounded, so that a command that writes without end does not keep
	// the loop from its other work: poll(2) says when there is more.
	for (int i = 0; i < 16; i++) {
		char buf[4096];
		ssize_t n = read(hs.fd, buf, sizeof buf);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0)
			return 0;
		hc_say(buf, (size_t)n);
	}
	return 1;
}

static void hc_begin(long long now) {
	memset(&hs.cur, 0, sizeof hs.cur);
	clock_gettime(CLOCK_REALTIME, &hs.cur.start);
	hs.busy = 1;
	hs.begun = now;
	hs.deadline = now + hc.timeout;
	hs.next_at = -1;
	hs.connected = 0;
	hs.reqlen = hs.reqoff = hs.resplen = 0;
	hs.have_status = 0;
	hs.drained = 0;
	if (hc.kind == HC_EXEC)
		hc_spawn(now);
	else
		hc_connect(now);
}

// sup_health_start_run: the process pid started (at started, on
// CLOCK_MONOTONIC): starting, the first check after the start interval.
void sup_health_start_run(int pid, long long started) {
	hc_close();
	hs.running = 1;
	hs.pid = pid;
	hs.started = started;
	hs.next_at = -1;
	if (hc.kind == HC_NONE)
		return;
	hs.status = "starting";
	hs.streak = 0;
	hs.next_at = started + hc.start_interval;
}

// sup_health_end_run: the process ended or is being stopped: no more
// checks, and the one in flight is dropped.
void sup_health_end_run(void) {
	hc_close();
	hs.running = 0;
	hs.next_at = -1;
}

// sup_health_reload takes a check changed in place (SIGHUP): the check
// in flight is dropped and a running process is checked anew from
// starting; a check removed leaves no health state.
void sup_health_reload(void) {
	hc_close();
	hs.next_at = -1;
	if (hc.kind == HC_NONE) {
		hs.status = NULL;
		sup_save();
		return;
	}
	const char *before = hs.status;
	hs.status = "starting";
	hs.streak = 0;
	if (hs.running && before != NULL && strcmp(before, "starting") != 0)
		sup_event(&(struct sup_event){.type = "health", .pid = hs.pid, .health = hs.status, .message = "the health check changed"});
	sup_save();
	if (hs.running)
		hs.next_at = sup_now(CLOCK_MONOTONIC) + hc.start_interval;
}

// sup_health_pollfd fills pf with what the check in flight waits for;
// 0 when nothing.
int sup_health_pollfd(struct pollfd *pf) {
	if (!hs.busy || hs.fd < 0)
		return 0;
	short ev = POLLIN;
	if (hc.kind != HC_EXEC && (!hs.connected || hs.reqoff < hs.reqlen))
		ev = POLLOUT;
	*pf = (struct pollfd){.fd = hs.fd, .events = ev};
	return 1;
}

// sup_health_deadline is when the loop must call sup_health_step at the
// latest (the next check, the timeout of the one in flight); -1 for never.
long long sup_health_deadline(void) {
	return hs.busy ? hs.deadline : hs.next_at;
}

// sup_health_step goes on with the health checks: revents of the check
// in flight's descriptor (0 for none), a timeout, a check that is due.
void sup_health_step(short revents, long long now) {
	if (hs.busy && revents != 0) {
		if (hc.kind == HC_EXEC) {
			if (!hc_read_output()) {
				// Its end: the loop reaps the process and finishes.
				close(hs.fd);
				hs.fd = -1;
			}
		} else {
			hc_socket_io(revents, now);
		}
	}
	if (hs.busy && now >= hs.deadline) {
		char d[32];
		sup_fmt_duration(d, sizeof d, hc.timeout);
		hc_fail(now, "health check: timed out after %s", d);
	}
	if (!hs.busy && hs.running && hs.next_at >= 0 && now >= hs.next_at)
		hc_begin(now);
}

// sup_health_reaped takes a child the loop reaped: 1 when it was the exec
// check in flight, whose result it records.
int sup_health_reaped(pid_t pid, int status) {
	if (!hs.busy || pid != hs.child)
		return 0;
	hs.child = 0; // reaped: nothing to kill
	if (hs.fd >= 0)
		hc_read_output(); // what it wrote before it ended
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	hc_finish(code == 0, code, sup_now(CLOCK_MONOTONIC));
	return 1;
}

// sup_health_json writes the "health" member of process.json (Health in
// state.go), when there is a check.
void sup_health_json(FILE *f) {
	if (hs.status == NULL)
		return;
	fprintf(f, ",\n  \"health\": {\n    \"status\": \"%s\",\n    \"failingStreak\": %d", hs.status, hs.streak);
	if (hs.nlog > 0) {
		fprintf(f, ",\n    \"log\": [");
		for (int i = 0; i < hs.nlog; i++) {
			struct hc_result *r = &hs.log[i];
			char a[64], b[64];
			sup_fmt_time(a, sizeof a, r->start);
			sup_fmt_time(b, sizeof b, r->end);
			fprintf(f, "%s\n      {\"start\": \"%s\", \"end\": \"%s\", \"passed\": %s, \"exitCode\": %d", i ? "," : "", a, b,
				r->passed ? "true" : "false", r->exit_code);
			if (r->outlen > 0) {
				fprintf(f, ", \"output\": ");
				sup_json_str(f, r->output);
			}
			fprintf(f, "}");
		}
		fprintf(f, "\n    ]");
	}
	fprintf(f, "\n  }");
}
