//go:build linux && cgo

// The C half of `hutch exec`: joining a running container's namespaces.
//
// setns(2) into a mount namespace fails with EINVAL for a process whose
// threads share their filesystem information (CLONE_FS), and into a user
// namespace for any process with more than one thread. A Go program has
// several threads before main runs, so the joining is done here, in a
// constructor that the dynamic loader runs before the Go runtime starts,
// while the process still has a single thread: the way runc's nsexec does.
//
// The constructor acts only when _HUTCH_NSENTER is set ("PIDFD:FD:FLAGS"):
// it waits for one byte on FD (the parent has put it in the container's
// cgroup by then) and joins the namespaces FLAGS names (CLONE_NEW*) of the
// process PIDFD refers to. PIDFD is a pidfd (pidfd_open(2)) of the
// container's init that the parent opened and checked (start time, mount
// namespace not the host's, exec.go): setns(2) on a pidfd (Linux 5.8) joins
// that very process's namespaces or fails with ESRCH once it has ended, so
// a pid reused by another process is never joined, as it could be through
// /proc/PID/ns/*. All of them are joined in one call, which either joins
// every one or none. The user namespace is among them only when it is not
// the caller's (setns(2) refuses to re-enter one's own: EINVAL). The
// credentials change only once every namespace has been checked, so the
// same call joins a network namespace that belongs to the host's user
// namespace, as a container's does even when it has a user namespace of its
// own (TestUserNamespace execs into one). A new pid namespace applies to
// children only, so it then forks. The child returns into the Go runtime (the exec stage),
// the parent waits for it, passes signals on and exits with its status.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol.h"

static pid_t hutch_child;

static void hutch_forward(int sig) {
	if (hutch_child > 0)
		kill(hutch_child, sig);
}

static void hutch_die(const char *what, const char *ns) {
	fprintf(stderr, "hutch exec: %s%s%s: %s\n", what, ns ? " " : "", ns ? ns : "", strerror(errno));
	_exit(126);
}

__attribute__((constructor)) static void hutch_nsenter(void) {
	const char *env = getenv(HUTCH_ENV_NSENTER);
	if (env == NULL || *env == '\0')
		return;
	int pidfd = -1, syncfd = -1;
	unsigned long flags = 0;
	const unsigned long known = CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET |
				    CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUSER;
	if (sscanf(env, "%d:%d:%lu", &pidfd, &syncfd, &flags) != 3 || pidfd < 0 || syncfd < 0 ||
	    (flags & ~known) != 0 || (flags & CLONE_NEWNS) == 0) {
		errno = EINVAL;
		hutch_die("bad " HUTCH_ENV_NSENTER, env);
	}
	char c;
	if (read(syncfd, &c, 1) != 1)
		hutch_die("wait for the cgroup", NULL);
	close(syncfd);

	if (setns(pidfd, (int)flags) < 0)
		hutch_die("setns", "the init's namespaces");
	close(pidfd);

	hutch_child = fork();
	if (hutch_child < 0)
		hutch_die("fork", NULL);
	if (hutch_child == 0) {
		unsetenv(HUTCH_ENV_NSENTER);
		prctl(PR_SET_NAME, "hutch-exec", 0, 0, 0);
		return; /* on into the Go runtime: the exec stage */
	}
	/* Run from /proc/self/fd/3, the process would be named "3" in ps. */
	prctl(PR_SET_NAME, "hutch-nsenter", 0, 0, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = hutch_forward;
	int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
	for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
	int status;
	for (;;) {
		pid_t w = waitpid(hutch_child, &status, 0);
		if (w == hutch_child)
			break;
		if (w < 0 && errno != EINTR)
			hutch_die("wait", NULL);
	}
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		_exit(128 + WTERMSIG(status));
	_exit(1);
}
