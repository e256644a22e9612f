//go:build linux && cgo

// The events file of the supervisor: BUNDLE/events.jsonl, one JSON object
// per line in the format of process.Event (events.go). Each line is made whole in
// memory and written with one write(2) on a descriptor opened with
// O_APPEND: the kernel appends it at the end in one piece, so a reader
// (`hutch events -f`) sees whole lines, or a last one still being written.
// The file is never truncated, so the events of the supervisors before
// this one stay; at HUTCH_EVENTS_MAX bytes it is renamed to events.jsonl.1
// (replacing the one before) and a new one is begun.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor.h"


static char ev_path[4200];
static char ev_container[256];
static int ev_fd = -1;

static void ev_open(void) {
	ev_fd = open(ev_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (ev_fd < 0)
		sup_log("events: %s", sup_errstr(errno));
}

void sup_events_open(const char *bundle, const char *container) {
	snprintf(ev_path, sizeof ev_path, "%s/" HUTCH_EVENTS_FILE, bundle);
	snprintf(ev_container, sizeof ev_container, "%s", container);
	ev_open();
}

// A line holds at most a message of 4 KiB (a check's output, an error),
// each byte escaped to at most 6 ("\u0001"), and the short fields.
static char ev_line[40 << 10];

void sup_event(const struct sup_event *e) {
	struct timespec t = e->time;
	if (t.tv_sec == 0)
		clock_gettime(CLOCK_REALTIME, &t);
	char ts[64];
	sup_fmt_time(ts, sizeof ts, t);
	FILE *f = fmemopen(ev_line, sizeof ev_line, "w");
	if (f == NULL)
		return;
	fprintf(f, "{\"time\":\"%s\",\"container\":", ts);
	sup_json_str(f, ev_container);
	fprintf(f, ",\"type\":\"%s\"", e->type);
	if (e->pid > 0)
		fprintf(f, ",\"pid\":%d", e->pid);
	if (e->exit_code != NULL)
		fprintf(f, ",\"exitCode\":%d", *e->exit_code);
	const char *keys[] = {"signal", "health", "message"};
	const char *vals[] = {e->signal, e->health, e->message};
	for (int i = 0; i < 3; i++) {
		if (vals[i] == NULL || vals[i][0] == '\0')
			continue;
		fprintf(f, ",\"%s\":", keys[i]);
		sup_json_str(f, vals[i]);
	}
	fputs("}\n", f);
	long n = ftell(f);
	int bad = ferror(f) || fflush(f) != 0;
	fclose(f);
	if (bad || n <= 0 || (size_t)n >= sizeof ev_line || ev_line[n - 1] != '\n')
		return; // cut short: never write half a line
	if (ev_fd < 0)
		ev_open(); // a full disk or a removed folder: try again
	if (ev_fd < 0)
		return;
	// The size is read each time: the file may have grown under a
	// supervisor before this one.
	struct stat s;
	if (fstat(ev_fd, &s) == 0 && s.st_size > 0 && s.st_size + n > HUTCH_EVENTS_MAX) {
		char old[4300];
		snprintf(old, sizeof old, "%s.1", ev_path);
		if (rename(ev_path, old) < 0)
			sup_log("events: rotate: %s", sup_errstr(errno));
		close(ev_fd);
		ev_open();
		if (ev_fd < 0)
			return;
	}
	if (write(ev_fd, ev_line, (size_t)n) != n)
		sup_log("events: write: %s", sup_errstr(errno));
}
