//go:build linux && cgo

// The init stage, started from Go (`hutch run`), joins
// the container's v1 cgroups itself, as the C supervisor's child does (see
// sup_clone in supervisor.c): writing a pid to cgroup.procs takes the
// kernel's global cgroup_threadgroup_rwsem for writing, whose writer waits
// for an RCU grace period (5-16 ms here), while a single thread moving
// itself ("0" to a tasks file) skips that lock. Go has several threads
// before main runs, so it is done here, in a constructor the dynamic loader
// runs while the process has one thread.
//
// It acts when _HUTCH_STAGE=init and _HUTCH_JOIN="HELLO:FD,FD,...": it
// writes one byte on HELLO (alive: a child the kernel killed at its birth
// in a clone3 CLONE_INTO_CGROUP never gets here, see sup_start_init), then
// "0" to each tasks file FD the parent opened for it. A failure goes to the
// init's error pipe (HUTCH_INIT_FD_ERROR), and the process exits.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"

__attribute__((constructor)) static void hutch_selfjoin(void) {
	const char *stage = getenv(HUTCH_ENV_STAGE);
	const char *join = getenv(HUTCH_ENV_JOIN);
	if (stage == NULL || strcmp(stage, HUTCH_STAGE_INIT) != 0 || join == NULL)
		return;
	char *p;
	long hello = strtol(join, &p, 10);
	if (write((int)hello, "1", 1) != 1)
		_exit(127);
	close((int)hello);
	while (*p == ':' || *p == ',') {
		long fd = strtol(p + 1, &p, 10);
		if (write((int)fd, "0", 1) != 1) {
			char msg[256];
			int n = snprintf(msg, sizeof msg, "start init: join cgroup (tasks, descriptor %ld): %s", fd, strerror(errno));
			if (n > 0 && write(HUTCH_INIT_FD_ERROR, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0)
				_exit(127);
			_exit(127);
		}
		close((int)fd);
	}
	unsetenv(HUTCH_ENV_JOIN);
}
