// The supervisor's C, exercised where Go tests cannot reach: its units are
// included whole (their static functions too) into this program, which
// supervisor_c_test.go builds with gcc and runs one command at a time:
//
//   conf DIR...             read DIR/supervisor.conf in turn, as a start and
//                           then SIGHUPs would, printing a JSON line of what
//                           was read after each
//   json HEX...             sup_json_str of each (hex-encoded) string, a line each
//   backoff N:RAN_NS...     sup_backoff, a line each
//   restart POLICY MAX RESTARTS CODE SIGNAL
//                           sup_should_restart: 1 or 0
//   time SEC NSEC           sup_fmt_time
//   duration NS             sup_fmt_duration
//   http LINE               hc_http_status
//   state DIR HEX           sup_save of a record whose error is HEX
//   event DIR HEX           sup_event of a health event whose message is HEX
//
// The constructors of supervisor.c act only when _HUTCH_STAGE is set, which
// the test does not set.
#define _GNU_SOURCE
#include "../supervisor.c"
#include "../supervisor_clone.c"
#include "../supervisor_conf.c"
#include "../supervisor_events.c"
#include "../supervisor_health.c"
#include "../supervisor_log.c"
#include "../supervisor_oom.c"
#include "../supervisor_spawn.c"
#include "../supervisor_state.c"

// unhex decodes s into a new string; NULL for an odd or bad one.
static char *unhex(const char *s) {
	size_t n = strlen(s);
	if (n % 2)
		return NULL;
	char *out = malloc(n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return NULL;
		out[i] = (char)v;
	}
	out[n / 2] = '\0';
	return out;
}

static void str_member(const char *key, const char *v, int first) {
	printf("%s\"%s\":", first ? "" : ",", key);
	sup_json_str(stdout, v);
}

static void num_member(const char *key, long long v) {
	printf(",\"%s\":%lld", key, v);
}

// print_conf prints what sup_read_conf read, and its result.
static void print_conf(int changed) {
	str_member("container", cf.container, 1);
	str_member("digest", cf.digest, 0);
	str_member("restart", cf.restart, 0);
	num_member("max_retries", cf.max_retries);
	num_member("stop_signal", cf.stop_signal);
	num_member("stop_timeout_ns", cf.stop_timeout_ns);
	num_member("log_max_size", cf.log_max_size);
	num_member("log_max_files", cf.log_max_files);
	str_member("oom_file", cf.oom_file, 0);
	num_member("clone_flags", (long long)cf.clone_flags);
	str_member("netns", cf.netns, 0);
	str_member("uid_map", cf.uid_map, 0);
	str_member("gid_map", cf.gid_map, 0);
	printf(",\"cgroup_procs\":[");
	for (int i = 0; i < cf.n_cgroup_procs; i++) {
		printf(i ? "," : "");
		sup_json_str(stdout, cf.cgroup_procs[i]);
	}
	printf("]");
	static const char *kinds[] = {"", "tcp", "http", "exec"};
	str_member("health_kind", kinds[hc.kind], 0);
	num_member("health_port", hc.port);
	str_member("health_path", hc.path, 0);
	num_member("health_interval_ns", hc.interval);
	num_member("health_start_interval_ns", hc.start_interval);
	num_member("health_timeout_ns", hc.timeout);
	num_member("health_start_period_ns", hc.start_period);
	num_member("health_retries", hc.retries);
	printf(",\"health_args\":[");
	int i = 0;
	for (size_t off = 0; off < hc.args_len; off += strlen(hc.args + off) + 1, i++) {
		printf(i ? "," : "");
		sup_json_str(stdout, hc.args + off);
	}
	printf("]");
	num_member("health_nargs", hc.nargs);
	num_member("changed", changed);
	printf("}\n");
}

static int cmd_conf(int argc, char **argv) {
	for (int i = 0; i < argc; i++) {
		snprintf(sup_bundle, sizeof sup_bundle, "%s", argv[i]);
		int r = sup_read_conf();
		if (r < 0) {
			printf("{\"error\":\"%s\"}\n", sup_errstr(errno));
			continue;
		}
		printf("{");
		print_conf(r);
	}
	return 0;
}

static int cmd_state(const char *dir, const char *errhex) {
	snprintf(sup_bundle, sizeof sup_bundle, "%s", dir);
	char *e = unhex(errhex);
	if (e == NULL)
		return 2;
	snprintf(cf.container, sizeof cf.container, "c\"1\\");
	snprintf(cf.digest, sizeof cf.digest, "sha256:ab");
	st.status = "exited";
	st.sup_pid = 42;
	st.sup_start = 1234567;
	st.pid = 43;
	st.pid_start = 1234568;
	st.started = (struct timespec){1700000000, 5};
	st.finished = (struct timespec){1700000001, 999999999};
	st.restarts = 2;
	st.exit_code = 137;
	snprintf(st.signal, sizeof st.signal, "SIGKILL");
	st.oom = 1;
	snprintf(st.error, sizeof st.error, "%s", e);
	// A health state with one result whose output is the error too.
	hc.kind = HC_EXEC;
	hs.status = "unhealthy";
	hs.streak = 3;
	hs.nlog = 1;
	hs.log[0] = (struct hc_result){.start = {1700000000, 1}, .end = {1700000000, 2}, .passed = 0, .exit_code = -1};
	hs.log[0].outlen = snprintf(hs.log[0].output, sizeof hs.log[0].output, "%s", e);
	sup_save();
	return 0;
}

static int cmd_event(const char *dir, const char *msghex) {
	char *m = unhex(msghex);
	if (m == NULL)
		return 2;
	sup_events_open(dir, "c\"1\\");
	int code = 3;
	sup_event(&(struct sup_event){.type = "health", .time = {1700000000, 7}, .pid = 9, .exit_code = &code, .health = "healthy", .message = m});
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	const char *c = argv[1];
	if (strcmp(c, "conf") == 0)
		return cmd_conf(argc - 2, argv + 2);
	if (strcmp(c, "json") == 0) {
		for (int i = 2; i < argc; i++) {
			char *s = unhex(argv[i]);
			if (s == NULL)
				return 2;
			sup_json_str(stdout, s);
			printf("\n");
		}
		return 0;
	}
	if (strcmp(c, "backoff") == 0) {
		for (int i = 2; i < argc; i++) {
			int n;
			long long ran;
			if (sscanf(argv[i], "%d:%lld", &n, &ran) != 2)
				return 2;
			printf("%lld\n", sup_backoff(n, ran));
		}
		return 0;
	}
	if (strcmp(c, "restart") == 0 && argc == 7) {
		snprintf(cf.restart, sizeof cf.restart, "%s", argv[2]);
		cf.max_retries = atoll(argv[3]);
		st.restarts = atoi(argv[4]);
		st.exit_code = atoi(argv[5]);
		snprintf(st.signal, sizeof st.signal, "%s", argv[6][0] == '-' ? "" : argv[6]);
		printf("%d\n", sup_should_restart());
		return 0;
	}
	if (strcmp(c, "time") == 0 && argc == 4) {
		char buf[64];
		sup_fmt_time(buf, sizeof buf, (struct timespec){atoll(argv[2]), atol(argv[3])});
		printf("%s\n", buf);
		return 0;
	}
	if (strcmp(c, "duration") == 0 && argc == 3) {
		char buf[64];
		sup_fmt_duration(buf, sizeof buf, atoll(argv[2]));
		printf("%s\n", buf);
		return 0;
	}
	if (strcmp(c, "http") == 0 && argc == 3) {
		printf("%d\n", hc_http_status(argv[2]));
		return 0;
	}
	if (strcmp(c, "state") == 0 && argc == 4)
		return cmd_state(argv[2], argv[3]);
	if (strcmp(c, "event") == 0 && argc == 4)
		return cmd_event(argv[2], argv[3]);
	return 2;
}
