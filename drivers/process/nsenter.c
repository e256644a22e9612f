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
// The constructor acts only when _HUTCH_NSENTER is set ("PID:FD"): it waits
// for one byte on FD (the parent has put it in the container's cgroup by
// then), opens /proc/PID/ns/* of the container's init, joins each namespace
// that differs from its own and forks: a new pid namespace applies to
// children only. The user namespace comes last: the host's root may join
// every other namespace (the network namespace is owned by the host's user
// namespace even when the container has its own), and once inside the
// container's user namespace it could not. The child returns into the Go runtime (the exec stage),
// the parent waits for it, passes signals on and exits with its status.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

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
	const char *env = getenv("_HUTCH_NSENTER");
	if (env == NULL || *env == '\0')
		return;
	int pid = 0, syncfd = -1;
	if (sscanf(env, "%d:%d", &pid, &syncfd) != 2 || pid <= 0 || syncfd < 0) {
		errno = EINVAL;
		hutch_die("bad _HUTCH_NSENTER", env);
	}
	char c;
	if (read(syncfd, &c, 1) != 1)
		hutch_die("wait for the cgroup", NULL);
	close(syncfd);

	static const struct {
		const char *name;
		int type;
	} nss[] = {
		{"cgroup", CLONE_NEWCGROUP}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
		{"net", CLONE_NEWNET},       {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
		{"user", CLONE_NEWUSER},
	};
	enum { N = sizeof(nss) / sizeof(nss[0]) };
	int fds[N];
	for (int i = 0; i < N; i++) {
		char path[64], self[64];
		struct stat a, b;
		snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, nss[i].name);
		snprintf(self, sizeof self, "/proc/self/ns/%s", nss[i].name);
		fds[i] = -1;
		if (stat(path, &a) < 0) {
			if (errno == ENOENT)
				continue; /* the kernel lacks this namespace type */
			hutch_die("stat", path);
		}
		if (stat(self, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			continue; /* already there (a container without its own user namespace) */
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			hutch_die("open", path);
	}
	for (int i = 0; i < N; i++) {
		if (fds[i] < 0)
			continue;
		if (setns(fds[i], nss[i].type) < 0)
			hutch_die("setns", nss[i].name);
		close(fds[i]);
	}

	hutch_child = fork();
	if (hutch_child < 0)
		hutch_die("fork", NULL);
	if (hutch_child == 0) {
		unsetenv("_HUTCH_NSENTER");
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
