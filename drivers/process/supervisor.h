// What the units of the supervisor in C share: supervisor.c (the poll(2)
// loop, the state, the start of the init), supervisor_events.c (the events
// file) and supervisor_health.c (the health checks). One process, one
// thread: nothing here is locked.
#ifndef HUTCH_SUPERVISOR_H
#define HUTCH_SUPERVISOR_H

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

// supervisor.c
extern char sup_bundle[4096];
extern sigset_t sup_oldmask; // the signal mask before the loop's, for children
void sup_log(const char *fmt, const char *arg);
const char *sup_errstr(int e);
long long sup_now(clockid_t c);
void sup_json_str(FILE *f, const char *s);
void sup_fmt_time(char *buf, size_t n, struct timespec ts);
void sup_save(void);
int sup_sealed_exe(void);
int sup_join_cgroups(void);

// supervisor_events.c: one line of the events file (process.Event in
// events.go). Zero fields are left out; time zero is now.
struct sup_event {
	const char *type;
	struct timespec time;
	int pid;
	const int *exit_code;
	const char *signal, *health, *message;
};
void sup_events_open(const char *bundle, const char *container);
void sup_event(const struct sup_event *e);

// supervisor_health.c
void sup_health_conf_begin(void);
int sup_health_conf(const char *key, const char *value);
int sup_health_conf_end(void);
void sup_health_start_run(int pid, long long started_mono);
void sup_health_end_run(void);
void sup_health_reload(void);
int sup_health_pollfd(struct pollfd *pf);
long long sup_health_deadline(void);
void sup_health_step(short revents, long long now);
int sup_health_reaped(pid_t pid, int status);
void sup_health_json(FILE *f);

#endif
