//go:build linux && cgo

// The supervisor's record of the container's process: BUNDLE/process.json,
// the State type of state.go, written atomically after every change, and
// what changes it at the end of a run (the exit status, the restart
// policy and its back-off).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor.h"

struct sup_state st;

// sup_start_time reads field 22 of /proc/PID/stat, counting after the last
// ')' because the command name may hold spaces.
unsigned long long sup_start_time(int pid) {
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

// sup_json_str writes s as a JSON string: quotes, backslashes and control
// characters escaped, every other byte as it is (UTF-8 passes).
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

// sup_fmt_time writes ts as RFC 3339 in UTC with nanoseconds, which Go's
// time.Time decodes.
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
	sup_path(p, sizeof p, HUTCH_STATE_FILE);
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

// sup_record_exit records how the init ended (its wait4 status): the exit
// code, or 128+N and the signal's name; an OOM kill in the run; the exit
// event.
void sup_record_exit(int status) {
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
	sup_oom_exit(pid);
	sup_event(&(struct sup_event){.type = "exit", .time = st.finished, .pid = pid, .exit_code = &st.exit_code, .signal = st.signal});
}

// sup_start_failed records a restart that failed (st.error says why) as a
// failed run: exit status 127, as a shell gives for a command it could not
// run.
void sup_start_failed(void) {
	st.exit_code = 127;
	st.signal[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &st.finished);
	sup_event(&(struct sup_event){.type = "exit", .time = st.finished, .exit_code = &st.exit_code, .message = st.error});
}

// sup_should_restart applies the restart policy to the run just recorded:
// always; on-failure after a non-zero exit or a signal, at most
// max_retries times (0: no limit); never.
int sup_should_restart(void) {
	if (strcmp(cf.restart, "always") == 0)
		return 1;
	if (strcmp(cf.restart, "on-failure") == 0) {
		if (st.exit_code == 0 && st.signal[0] == '\0')
			return 0;
		return cf.max_retries == 0 || st.restarts < cf.max_retries;
	}
	return 0;
}

// sup_backoff is the wait before restart number n+1, in ns: 100 ms
// doubling to at most 30 s; a run of 10 s or more starts over.
long long sup_backoff(int n, long long ran_ns) {
	long long d = 100000000LL;
	if (ran_ns >= 10000000000LL)
		return d;
	for (int i = 0; i < n && d < 30000000000LL; i++)
		d *= 2;
	return d < 30000000000LL ? d : 30000000000LL;
}
