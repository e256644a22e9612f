// What the units of the supervisor share (README.md has the stages; each
// unit says what it is):
//
//   supervisor.c         the stage's entry (a constructor), the poll(2)
//                        loop, the start and stop of the container's init
//   supervisor_conf.c    supervisor.conf, as the driver wrote it (conf.go)
//   supervisor_log.c     the container's log, and the supervisor's own
//   supervisor_state.c   the record (process.json) and what changes it
//   supervisor_oom.c     the cgroup's OOM kill count, and its watch
//   supervisor_clone.c   the clone of the init into its namespaces and
//                        cgroup, from the sealed binary
//   supervisor_spawn.c   the spawn stage, which starts the supervisor
//   supervisor_events.c  the events file
//   supervisor_health.c  the health checks
//
// One process, one thread: nothing here is locked.
#ifndef HUTCH_SUPERVISOR_H
#define HUTCH_SUPERVISOR_H

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "protocol.h"

// SUP_STR(HUTCH_INIT_FD_EXE) is "3": a number of protocol.h in a string.
#define SUP_STR(x) SUP_STR_(x)
#define SUP_STR_(x) #x

// SUP_FD_REPORT is where the supervisor writes its report of the first
// start (readyMsg in spawn.go, a line of JSON) for the spawn stage, which
// passes it on to the driver.
#define SUP_FD_REPORT 3

// supervisor.c: the entry, the loop, and small helpers of every unit.
extern sigset_t sup_oldmask; // the signal mask before the loop's, for children
const char *sup_errstr(int e);
long long sup_now(clockid_t c);
int sup_write_file(const char *path, const char *s);

// supervisor_conf.c: supervisor.conf (writeConf in conf.go).
struct sup_conf {
	char container[256];
	char digest[256];
	char restart[32];
	long long max_retries;
	int stop_signal;
	long long stop_timeout_ns;
	long long log_max_size;
	long long log_max_files;
	char oom_file[4096];
	// How to start the init (sup_clone), worked out by the driver from
	// config.json and the cgroup driver (newLaunch in conf.go).
	unsigned long clone_flags;
	char netns[4096];
	char uid_map[HUTCH_CONF_MAX_MAP + 24], gid_map[HUTCH_CONF_MAX_MAP + 24]; // "inside outside count" lines
	char *cgroup_procs[HUTCH_CONF_MAX_CGROUPS];
	int n_cgroup_procs;
};
extern struct sup_conf cf;
extern char sup_bundle[4096];
void sup_path(char *dst, size_t n, const char *name);
int sup_read_conf(void);

// supervisor_log.c: the container's streams, written to its log file, and
// the supervisor's own errors (stderr: supervisor.log).
struct sup_stream {
	int fd;
	const char *name;
	size_t len;
	char buf[16 << 10]; // a line longer than this is cut into P records
};
extern struct sup_stream sup_out, sup_err;
extern char sup_logpath[4200];
int sup_log_open(void);
int sup_drain(struct sup_stream *s);
void sup_close_stream(struct sup_stream *s);
void sup_log(const char *fmt, const char *arg);

// supervisor_state.c: the record of the container's process.
struct sup_state {
	const char *status;
	int sup_pid;
	unsigned long long sup_start;
	int pid;
	unsigned long long pid_start;
	struct timespec started, finished;
	int restarts;
	int exit_code;
	char signal[32];
	int oom;
	char error[4096];
};
extern struct sup_state st;
void sup_save(void);
void sup_json_str(FILE *f, const char *s);
void sup_fmt_time(char *buf, size_t n, struct timespec ts);
unsigned long long sup_start_time(int pid);
void sup_record_exit(int status);
void sup_start_failed(void);
int sup_should_restart(void);
long long sup_backoff(int n, long long ran_ns);

// supervisor_oom.c: the cgroup's OOM kill count.
extern int sup_oom_fd;
extern long long sup_oom_recheck_at;
long long sup_oom_kills(void);
void sup_oom_watch(void);
void sup_oom_run(long long before);
void sup_oom_check(void);
void sup_oom_notified(void);
void sup_oom_exit(int pid);

// supervisor_clone.c: the start of the container's init.
int sup_start_init(int out, int err);
int sup_sealed_exe(void);
int sup_join_cgroups(void);

// supervisor_spawn.c: the spawn stage.
int sup_spawn(void);

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
