//go:build linux && cgo

// The container's log: its stdout and stderr are pipes to the supervisor,
// which writes each line to BUNDLE/logs/container.log in the CRI format
// kubelet and containerd use ("2026-11-29T04:05:06.1Z stdout F text"; P
// marks the parts of a line longer than a stream's buffer), rotated at the
// manifest's size (logs.go reads it). And the supervisor's own errors,
// which go to its stderr, the bundle's supervisor.log.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "supervisor.h"

struct sup_stream sup_out = {-1, "stdout", 0, {0}}, sup_err = {-1, "stderr", 0, {0}};
char sup_logpath[4200];
static int sup_logfd = -1;
static long long sup_logsize;

void sup_log(const char *fmt, const char *arg) {
	fprintf(stderr, "supervisor: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
}

static void sup_open_log(void) {
	sup_logfd = open(sup_logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	struct stat s;
	sup_logsize = (sup_logfd >= 0 && fstat(sup_logfd, &s) == 0) ? s.st_size : 0;
}

// sup_log_open makes the bundle's logs folder and opens the log in it; -1
// when it cannot (errno says why).
int sup_log_open(void) {
	char dir[4200];
	snprintf(sup_logpath, sizeof sup_logpath, "%s/" HUTCH_LOG_DIR "/" HUTCH_LOG_NAME, sup_bundle);
	sup_path(dir, sizeof dir, HUTCH_LOG_DIR);
	mkdir(dir, 0700);
	sup_open_log();
	return sup_logfd < 0 ? -1 : 0;
}

// sup_rotate: container.log becomes container.log.1, .1 becomes .2, ...,
// keeping log_max_files files in all.
static void sup_rotate(void) {
	char a[4300], b[4300];
	close(sup_logfd);
	long long keep = cf.log_max_files - 1;
	if (keep < 1) {
		unlink(sup_logpath);
	} else {
		snprintf(a, sizeof a, "%s.%lld", sup_logpath, keep);
		unlink(a);
		for (long long i = keep - 1; i >= 1; i--) {
			snprintf(a, sizeof a, "%s.%lld", sup_logpath, i);
			snprintf(b, sizeof b, "%s.%lld", sup_logpath, i + 1);
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
	static char rec[sizeof sup_out.buf + 128];
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
int sup_drain(struct sup_stream *s) {
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

// sup_close_stream reads the stream to its end, records a last line
// without a newline, and closes it.
void sup_close_stream(struct sup_stream *s) {
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
