//go:build linux && cgo

// The cgroup's OOM kill count, read from the file the driver named in
// supervisor.conf (oom_file: v1 memory.oom_control, v2 memory.events; ""
// without a memory controller). It is read at the start of each run and
// at its end (a rise is an OOM kill in the run: oomKilled), and watched
// while the run goes on.
//
// The OOM killer may kill a process of the container other than its first
// (one that `hutch exec` started, a worker the workload forked) while the
// first runs on. So that the oom event says so when it happens, not only
// at the end of the run, the supervisor watches the count: sup_oom_fd is
// readable when it may have risen. sup_oom_seen is the count last
// reported (or found at the start of the run).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "supervisor.h"

int sup_oom_fd = -1;
long long sup_oom_recheck_at = -1;
static int sup_oom_v1;
static long long sup_oom_before = -1, sup_oom_seen = -1;

// sup_oom_kills reads the oom_kill line of the cgroup file the driver
// named ("oom_kill N", which oom_kill_disable and oom_group_kill must not
// be taken for). -1 when there is no such file or line.
long long sup_oom_kills(void) {
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
void sup_oom_watch(void) {
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

// sup_oom_run begins a run whose count was before at its start.
void sup_oom_run(long long before) {
	sup_oom_before = sup_oom_seen = before;
}

// sup_oom_check reads the count and appends an oom event when it rose
// since it was last seen.
void sup_oom_check(void) {
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
void sup_oom_notified(void) {
	char buf[4096];
	while (read(sup_oom_fd, buf, sizeof buf) > 0)
		;
	sup_oom_check();
	if (sup_oom_v1)
		sup_oom_recheck_at = sup_now(CLOCK_MONOTONIC) + 100000000LL;
}

// sup_oom_exit reads the count at the end of the run of pid, which ended
// at st.finished: a rise during the run means the OOM killer struck
// (st.oom). The kernel counts the kill before it sends SIGKILL
// (__oom_kill_process), so the count is final here. A rise not reported
// yet (sup_oom_check) is the kill of the process itself, most often,
// whose SIGCHLD came with the notification: its oom event comes now.
void sup_oom_exit(int pid) {
	long long n = sup_oom_kills();
	if (sup_oom_before >= 0 && n > sup_oom_before)
		st.oom = 1;
	if (sup_oom_seen >= 0 && n > sup_oom_seen) {
		char msg[128];
		snprintf(msg, sizeof msg, "the OOM killer killed %lld process(es) of the container", n - sup_oom_seen);
		sup_event(&(struct sup_event){.type = "oom", .time = st.finished, .pid = pid, .message = msg});
	}
	if (n >= 0)
		sup_oom_seen = n;
}
