//go:build linux && cgo

// The spawn stage: the first fork of the classic double fork, which the
// driver runs in a new session (setsid(2), Start in driver.go) so that the
// supervisor it starts, not being a session leader, can never acquire a
// terminal again. It is C: in Go it would be a Go process start (3-4 ms of
// runtime and package initialisation) on every container start only to
// fork once.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <linux/close_range.h>
#include <unistd.h>

#include "supervisor.h"

// sup_spawn starts the supervisor (fork and execve, so that the
// supervisor's /proc/PID/environ names its stage and bundle: owned.go
// finds it by them), passes its report of the first start on to stdout
// (the driver's readyMsg) and returns, and the stage exits, leaving the
// supervisor to init or the nearest subreaper. The supervisor's
// GOMAXPROCS=1 is for the Go helper it may run (cgroup-kill), which needs
// no parallel work.
int sup_spawn(void) {
	const char *bundle = getenv(HUTCH_ENV_BUNDLE);
	if (bundle == NULL)
		bundle = "";
	// Descriptors that whoever ran hutch held without O_CLOEXEC end here.
	syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
	char p[4200];
	snprintf(p, sizeof p, "%s/" HUTCH_SUPERVISOR_LOG, bundle);
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
	static char e_stage[] = HUTCH_ENV_STAGE "=" HUTCH_STAGE_SUPERVISOR, e_gmp[] = "GOMAXPROCS=1";
	char e_bundle[4200];
	snprintf(e_bundle, sizeof e_bundle, HUTCH_ENV_BUNDLE "=%s", bundle);
	char *envp[] = {e_stage, e_bundle, e_gmp, NULL};
	const char *name = strrchr(bundle, '/');
	char *argv[] = {"hutch-" HUTCH_STAGE_SUPERVISOR, (char *)(name ? name + 1 : bundle), NULL};
	fflush(stdout);
	pid_t c = fork();
	if (c < 0) {
		printf("{\"error\":\"supervisor: start: fork: %s\"}\n", strerror(errno));
		return 1;
	}
	if (c == 0) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(errlog, 2) < 0 || dup2(pp[1], SUP_FD_REPORT) < 0 || chdir("/") < 0)
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
