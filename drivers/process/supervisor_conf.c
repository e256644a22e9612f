//go:build linux && cgo

// supervisor.conf, which the driver writes for the supervisor (writeConf
// in conf.go) and rewrites for an update in place, read at the start and
// again on SIGHUP: one "key value" line each, a key with several values
// repeated, no quoting (a value with newlines, a health check's argument,
// is escaped by the driver and undone by supervisor_health.c). Plain lines,
// so that C reads them without a JSON parser. A line without a space or
// with a key no unit takes is skipped.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor.h"

struct sup_conf cf;
char sup_bundle[4096];

// sup_path is the file name in the bundle.
void sup_path(char *dst, size_t n, const char *name) {
	snprintf(dst, n, "%s/%s", sup_bundle, name);
}

// How a key's value is stored in cf.
enum {
	CONF_STR,   // a string, cut to its buffer
	CONF_INT,   // an int (atoi)
	CONF_NUM,   // a long long (atoll)
	CONF_FLAGS, // an unsigned long (strtoul, base 10)
	CONF_LINES, // appended to a buffer as a line of its own
	CONF_LIST,  // a copy added to cf.cgroup_procs
};

// The keys the supervisor takes itself; the health_* keys are
// supervisor_health.c's.
static const struct {
	const char *key;
	int kind;
	void *dst;
	size_t size; // of a CONF_STR or CONF_LINES buffer
} sup_conf_keys[] = {
	{HUTCH_KEY_CONTAINER, CONF_STR, cf.container, sizeof cf.container},
	{HUTCH_KEY_DIGEST, CONF_STR, cf.digest, sizeof cf.digest},
	{HUTCH_KEY_RESTART, CONF_STR, cf.restart, sizeof cf.restart},
	{HUTCH_KEY_MAX_RETRIES, CONF_NUM, &cf.max_retries, 0},
	{HUTCH_KEY_STOP_SIGNAL, CONF_INT, &cf.stop_signal, 0},
	{HUTCH_KEY_STOP_TIMEOUT_NS, CONF_NUM, &cf.stop_timeout_ns, 0},
	{HUTCH_KEY_LOG_MAX_SIZE, CONF_NUM, &cf.log_max_size, 0},
	{HUTCH_KEY_LOG_MAX_FILES, CONF_NUM, &cf.log_max_files, 0},
	{HUTCH_KEY_OOM_FILE, CONF_STR, cf.oom_file, sizeof cf.oom_file},
	{HUTCH_KEY_CLONE_FLAGS, CONF_FLAGS, &cf.clone_flags, 0},
	{HUTCH_KEY_NETNS, CONF_STR, cf.netns, sizeof cf.netns},
	{HUTCH_KEY_UID_MAP, CONF_LINES, cf.uid_map, sizeof cf.uid_map},
	{HUTCH_KEY_GID_MAP, CONF_LINES, cf.gid_map, sizeof cf.gid_map},
	{HUTCH_KEY_CGROUP_PROCS, CONF_LIST, NULL, 0},
};

// sup_conf_set stores one line's value; 0 when the key is not one of
// sup_conf_keys.
static int sup_conf_set(const char *key, const char *v) {
	for (unsigned i = 0; i < sizeof sup_conf_keys / sizeof sup_conf_keys[0]; i++) {
		if (strcmp(key, sup_conf_keys[i].key) != 0)
			continue;
		void *dst = sup_conf_keys[i].dst;
		size_t n = sup_conf_keys[i].size, k;
		switch (sup_conf_keys[i].kind) {
		case CONF_STR:
			snprintf(dst, n, "%s", v);
			break;
		case CONF_INT:
			*(int *)dst = atoi(v);
			break;
		case CONF_NUM:
			*(long long *)dst = atoll(v);
			break;
		case CONF_FLAGS:
			*(unsigned long *)dst = strtoul(v, NULL, 10);
			break;
		case CONF_LINES:
			k = strlen(dst);
			snprintf((char *)dst + k, n - k, "%s\n", v);
			break;
		case CONF_LIST:
			if (cf.n_cgroup_procs < (int)(sizeof cf.cgroup_procs / sizeof cf.cgroup_procs[0])) {
				char *d = strdup(v);
				if (d != NULL)
					cf.cgroup_procs[cf.n_cgroup_procs++] = d;
			}
			break;
		}
		return 1;
	}
	return 0;
}

// sup_read_conf reads supervisor.conf. What the init's launch needs is
// forgotten first (a reread must not keep a map or a cgroup file the new
// file no longer names); the policies keep their values when their key is
// missing. It returns 1 when the health check changed, 0 when not, -1
// when the file cannot be read (errno says why).
int sup_read_conf(void) {
	char p[4200], line[HUTCH_CONF_MAX_VALUE + 200]; // the key, and the value the driver lets through
	sup_path(p, sizeof p, HUTCH_CONF_FILE);
	FILE *f = fopen(p, "re");
	if (f == NULL)
		return -1;
	cf.oom_file[0] = cf.netns[0] = cf.uid_map[0] = cf.gid_map[0] = '\0';
	cf.clone_flags = 0;
	for (int i = 0; i < cf.n_cgroup_procs; i++)
		free(cf.cgroup_procs[i]);
	cf.n_cgroup_procs = 0;
	sup_health_conf_begin();
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		char *v = strchr(line, ' ');
		if (v == NULL)
			continue;
		*v++ = '\0';
		if (!sup_conf_set(line, v))
			sup_health_conf(line, v);
	}
	fclose(f);
	if (cf.stop_signal <= 0)
		cf.stop_signal = SIGTERM;
	return sup_health_conf_end();
}
