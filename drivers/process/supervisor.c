//go:build linux && cgo

// The container supervisor, in C, as conmon is for podman.
//
// The supervisor lives as long as its container, so its memory counts. A Go
// process carries the runtime and the heap every package's initialisation
// leaves (several MiB resident); this loop runs in a constructor, before the
// Go runtime starts, in the hutch binary that is already on disk: no second
// program to install. It starts the container's init stage itself
// (supervisor_clone.c) and reads the OOM kill count itself
// (supervisor_oom.c), from what the driver worked out in Go and wrote to
// supervisor.conf (supervisor_conf.c). Only killing a cgroup whose init
// outlived the stop timeout runs in a short-lived helper process of the
// same binary (_HUTCH_STAGE=cgroup-kill).
//
// The constructor acts when _HUTCH_STAGE is spawn (supervisor_spawn.c) or
// supervisor. The supervisor reads bundle/supervisor.conf, starts the
// container's init, reports on descriptor 3, and then, with
// PR_SET_CHILD_SUBREAPER, waits in poll(2) for the init's stdout and stderr
// (supervisor_log.c), for SIGCHLD (the init ended: exit code, signal, OOM
// kill; the restart policy), SIGTERM or SIGINT (stop: the stop signal, the
// timeout, then SIGKILL of the cgroup) and SIGHUP (reread the policies),
// and runs the health check (supervisor_health.c). Its record is
// bundle/process.json (supervisor_state.c); what happens to the process
// (start, exit, OOM kill, restart, health, stop) it appends to
// bundle/events.jsonl (supervisor_events.c).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor.h"

sigset_t sup_oldmask;

// When the run began, on CLOCK_MONOTONIC: a run of 10 s or more starts the
// back-off over (sup_backoff).
static long long sup_started_mono;

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

// sup_write_file writes s to path in one write(2) (a uid_map must be
// written at once).
int sup_write_file(const char *path, const char *s) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(s) ? 0 : -1;
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
		setenv(HUTCH_ENV_STAGE, stage, 1);
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

// sup_start starts the container's init (sup_start_init) with pipes for
// its stdout and stderr, and records the run; 0 on success, else st.error
// says why.
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
	sup_oom_run(oom);
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

// sup_stop_timeout is the timeout of a stop, in ns: the stop request's
// (the stop file, which Stop writes before its SIGTERM), else the
// container's, else 10 s.
static long long sup_stop_timeout(void) {
	char p[4200], buf[64];
	sup_path(p, sizeof p, HUTCH_STOP_FILE);
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

// sup_report writes the report of the first start on descriptor ready
// (readyMsg in spawn.go): {"pid":N}, or {"error":"..."}.
static void sup_report(int ready, int pid, const char *err) {
	if (err == NULL) {
		dprintf(ready, "{\"pid\":%d}\n", pid);
		return;
	}
	FILE *f = fdopen(dup(ready), "w");
	if (f == NULL)
		return;
	fprintf(f, "{\"error\":");
	sup_json_str(f, err);
	fprintf(f, "}\n");
	fclose(f);
}

// sup_setup reads what the supervisor needs before anything starts: its
// bundle, supervisor.conf, the events file, the OOM watch, the container's
// log. -1 when it cannot, reported on ready.
static int sup_setup(int ready) {
	char msg[4400];
	fcntl(ready, F_SETFD, FD_CLOEXEC);
	const char *bundle = getenv(HUTCH_ENV_BUNDLE);
	snprintf(sup_bundle, sizeof sup_bundle, "%s", bundle ? bundle : "");
	if (sup_read_conf() < 0) {
		snprintf(msg, sizeof msg, "supervisor: read %s/" HUTCH_CONF_FILE ": %s", sup_bundle, strerror(errno));
		sup_report(ready, 0, msg);
		return -1;
	}
	sup_events_open(sup_bundle, cf.container);
	sup_oom_watch();
	if (sup_log_open() < 0) {
		snprintf(msg, sizeof msg, "supervisor: log %s: %s", sup_logpath, strerror(errno));
		sup_report(ready, 0, msg);
		return -1;
	}
	return 0;
}

// sup_signals makes the supervisor the subreaper of what it starts and
// turns the signals it waits for into a signalfd(2), read in the loop.
static int sup_signals(void) {
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
	return signalfd(-1, &mask, SFD_CLOEXEC);
}

// sup_first_start records the supervisor, starts the first run and
// reports it on ready, which it then closes; -1 when the start failed.
static int sup_first_start(int ready) {
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
		sup_report(ready, 0, st.error);
		close(ready);
		return -1;
	}
	sup_report(ready, st.pid, NULL);
	// Close the report pipe by putting /dev/null in its place: descriptor
	// 3 stays taken, so no pipe made later lands on it (a descriptor the
	// init finds, though sup_init_child moves its own out of the way).
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0 && nul != ready) {
		dup3(nul, ready, O_CLOEXEC);
		close(nul);
	}
	return 0;
}

// What the loop waits for besides its descriptors: the deadlines are on
// CLOCK_MONOTONIC, in ns, -1 for none.
struct sup_loop {
	int sfd;		    // the signalfd
	int init_done, init_status; // the init was reaped (and how it ended), its output not read to the end yet
	int stopping;		    // a stop was asked for
	long long kill_at;	    // the stop timeout: SIGKILL
	long long restart_at;	    // the back-off's end: the next run
	long long close_at;	    // the last read of the ended init's output
};

// The loop goes on: no exit code.
#define SUP_GO_ON (-1)

// The descriptors of one poll(2): the signalfd first, the streams still
// open, the health check's, the OOM watch.
struct sup_pollset {
	struct pollfd pf[5];
	int n, io, io_end, health, oom;
};

// sup_poll waits until a descriptor is ready or the next deadline.
static int sup_poll(struct sup_loop *lp, struct sup_pollset *ps) {
	int n = 0;
	ps->pf[n++] = (struct pollfd){.fd = lp->sfd, .events = POLLIN};
	ps->io = n;
	if (sup_out.fd >= 0)
		ps->pf[n++] = (struct pollfd){.fd = sup_out.fd, .events = POLLIN};
	if (sup_err.fd >= 0)
		ps->pf[n++] = (struct pollfd){.fd = sup_err.fd, .events = POLLIN};
	ps->io_end = n;
	ps->health = ps->oom = -1;
	if (sup_health_pollfd(&ps->pf[n]))
		ps->health = n++;
	if (sup_oom_fd >= 0) {
		ps->oom = n;
		ps->pf[n++] = (struct pollfd){.fd = sup_oom_fd, .events = POLLIN};
	}
	ps->n = n;
	long long now = sup_now(CLOCK_MONOTONIC), next = -1;
	long long deadlines[5] = {lp->kill_at, lp->restart_at, lp->close_at, sup_health_deadline(), sup_oom_recheck_at};
	for (int i = 0; i < 5; i++)
		if (deadlines[i] >= 0 && (next < 0 || deadlines[i] < next))
			next = deadlines[i];
	int timeout = next < 0 ? -1 : (next <= now ? 0 : (int)((next - now) / 1000000 + 1));
	return poll(ps->pf, ps->n, timeout) < 0 && errno != EINTR ? -1 : 0;
}

// sup_on_io reads the container's streams and the OOM watch that poll(2)
// found ready, and rereads the OOM count when its recheck is due.
static void sup_on_io(const struct sup_pollset *ps) {
	for (int i = ps->io; i < ps->io_end; i++) {
		if (ps->pf[i].revents == 0)
			continue;
		struct sup_stream *s = ps->pf[i].fd == sup_out.fd ? &sup_out : &sup_err;
		if (sup_drain(s) == 0)
			sup_close_stream(s);
	}
	if (ps->oom >= 0 && (ps->pf[ps->oom].revents & POLLIN))
		sup_oom_notified();
	if (sup_oom_recheck_at >= 0 && sup_now(CLOCK_MONOTONIC) >= sup_oom_recheck_at) {
		sup_oom_recheck_at = -1;
		sup_oom_check();
	}
}

// sup_stop starts a stop that signo (SIGTERM, SIGINT) asked for: the
// container's stop signal, and SIGKILL after the timeout, or at once when
// the init does not catch the signal. 0 when nothing runs (the
// supervisor exits), else SUP_GO_ON.
static int sup_stop(struct sup_loop *lp, int signo) {
	lp->stopping = 1;
	const char *abbr = sigabbrev_np(signo);
	char msg[64];
	snprintf(msg, sizeof msg, "stop asked for (SIG%s to the supervisor)", abbr ? abbr : "?");
	sup_event(&(struct sup_event){.type = "stop", .pid = st.pid, .message = msg});
	sup_health_end_run();
	if (st.pid <= 0 && !lp->init_done) {
		st.status = "stopped";
		clock_gettime(CLOCK_REALTIME, &st.finished);
		sup_save();
		return 0;
	}
	st.status = "stopping";
	sup_save();
	if (!lp->init_done) {
		kill(st.pid, cf.stop_signal);
		lp->kill_at = sup_now(CLOCK_MONOTONIC) + sup_stop_timeout();
		// A pid 1 that does not catch the signal gets SIGKILL at once,
		// from here: the kernel then kills the rest of its pid
		// namespace. The cgroup-wide kill (a Go helper, a whole Go
		// start on the path of every delete) stays for the timeout,
		// should the init outlive it; what is left in the cgroup of a
		// container without its own pid namespace is killed by the
		// driver's Stop once this supervisor exits.
		if (!sup_catches(st.pid, cf.stop_signal))
			kill(st.pid, SIGKILL);
	}
	return SUP_GO_ON;
}

// sup_on_signals takes the signals the signalfd holds: SIGHUP rereads
// supervisor.conf, SIGTERM and SIGINT stop (once), SIGCHLD only wakes the
// loop, which reaps. An exit code when the supervisor is done.
static int sup_on_signals(struct sup_loop *lp) {
	struct signalfd_siginfo si;
	while (read(lp->sfd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP) {
			if (sup_read_conf() == 1)
				sup_health_reload();
		} else if (si.ssi_signo != SIGCHLD && !lp->stopping) {
			int rc = sup_stop(lp, (int)si.ssi_signo);
			if (rc != SUP_GO_ON)
				return rc;
		}
		// Short reads cannot happen; stop after the pending ones.
		struct pollfd again = {.fd = lp->sfd, .events = POLLIN};
		if (poll(&again, 1, 0) <= 0)
			break;
	}
	return SUP_GO_ON;
}

// sup_reap reaps every child that ended (helpers are waited for by
// sup_helper; this catches the init, an exec health check, and anything
// re-parented).
static void sup_reap(struct sup_loop *lp) {
	for (;;) {
		int status;
		pid_t w = waitpid(-1, &status, WNOHANG);
		if (w <= 0)
			break;
		if (w == st.pid && !lp->init_done) {
			lp->init_done = 1;
			lp->init_status = status;
			sup_health_end_run();
			// Its output may still sit in the pipes: read them to
			// their end (bounded, should something else hold them).
			lp->close_at = sup_now(CLOCK_MONOTONIC) + 2000000000LL;
		} else {
			sup_health_reaped(w, status);
		}
	}
}

// sup_on_kill_due: the stop timeout passed: SIGKILL every process of the
// cgroup (a Go helper through the cgroup driver), and the init.
static void sup_on_kill_due(struct sup_loop *lp, long long now) {
	if (lp->kill_at < 0 || now < lp->kill_at)
		return;
	sup_helper(HUTCH_STAGE_CGROUP_KILL);
	if (!lp->init_done)
		kill(st.pid, SIGKILL);
	lp->kill_at = -1;
}

// sup_on_init_end records a run whose init was reaped once its output is
// read to the end, and applies the restart policy: an exit code when the
// supervisor is done, else the back-off before the next run.
static int sup_on_init_end(struct sup_loop *lp, long long now) {
	if (!lp->init_done || ((sup_out.fd >= 0 || sup_err.fd >= 0) && now < lp->close_at))
		return SUP_GO_ON;
	sup_close_stream(&sup_out);
	sup_close_stream(&sup_err);
	sup_record_exit(lp->init_status);
	lp->init_done = 0;
	lp->close_at = -1;
	lp->kill_at = -1;
	long long ran = now - sup_started_mono;
	if (lp->stopping) {
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
	lp->restart_at = now + sup_backoff(st.restarts, ran);
	return SUP_GO_ON;
}

// sup_on_restart_due starts the next run once the back-off passed; a
// start that fails counts as a failed run.
static int sup_on_restart_due(struct sup_loop *lp, long long now) {
	if (lp->restart_at < 0 || now < lp->restart_at)
		return SUP_GO_ON;
	lp->restart_at = -1;
	st.restarts++;
	char msg[32];
	snprintf(msg, sizeof msg, "restart %d", st.restarts);
	sup_event(&(struct sup_event){.type = "restart", .message = msg});
	if (sup_start() == 0)
		return SUP_GO_ON;
	sup_start_failed();
	if (!sup_should_restart()) {
		st.status = "failed";
		sup_save();
		return 1;
	}
	sup_save();
	lp->restart_at = sup_now(CLOCK_MONOTONIC) + sup_backoff(st.restarts, 0);
	return SUP_GO_ON;
}

// sup_main is the supervisor stage: set up, start the first run, then the
// loop until the container is done (stopped, exited for good, failed).
static int sup_main(void) {
	int ready = SUP_FD_REPORT;
	if (sup_setup(ready) < 0)
		return 1;
	int sfd = sup_signals();
	if (sup_first_start(ready) < 0)
		return 1;
	struct sup_loop lp = {.sfd = sfd, .kill_at = -1, .restart_at = -1, .close_at = -1};
	for (;;) {
		struct sup_pollset ps;
		if (sup_poll(&lp, &ps) < 0)
			return 1;
		sup_on_io(&ps);
		int rc = SUP_GO_ON;
		if (ps.pf[0].revents & POLLIN)
			rc = sup_on_signals(&lp);
		if (rc != SUP_GO_ON)
			return rc;
		sup_reap(&lp);
		long long now = sup_now(CLOCK_MONOTONIC);
		sup_health_step(ps.health >= 0 ? ps.pf[ps.health].revents : 0, now);
		sup_on_kill_due(&lp, now);
		if ((rc = sup_on_init_end(&lp, now)) != SUP_GO_ON || (rc = sup_on_restart_due(&lp, now)) != SUP_GO_ON)
			return rc;
	}
}

__attribute__((constructor)) static void hutch_supervisor(void) {
	const char *stage = getenv(HUTCH_ENV_STAGE);
	if (stage != NULL && strcmp(stage, HUTCH_STAGE_SPAWN) == 0) {
		prctl(PR_SET_NAME, "hutch-" HUTCH_STAGE_SPAWN, 0, 0, 0);
		int rc = sup_spawn();
		fflush(stdout);
		_exit(rc);
	}
	if (stage == NULL || strcmp(stage, HUTCH_STAGE_SUPERVISOR) != 0)
		return;
	prctl(PR_SET_NAME, "hutch-" HUTCH_STAGE_SUPERVISOR, 0, 0, 0);
	fflush(stderr);
	_exit(sup_main());
}
