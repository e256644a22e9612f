// The contract between the C and the Go of this package (README.md draws
// the stages): the environment a stage of the hutch binary is run with,
// the stages, the descriptors each stage finds, the files of a bundle both
// sides read or write, the keys of supervisor.conf and the limits both
// keep. protocol.go holds the same names and values for Go, and says what
// each is; TestProtocolAgrees checks that the two agree. Each constant is
// one line "#define HUTCH_NAME VALUE", VALUE a string or a decimal
// integer: the test reads nothing else (but the guard).
#ifndef HUTCH_PROTOCOL_H
#define HUTCH_PROTOCOL_H

// The environment.
#define HUTCH_ENV_STAGE "_HUTCH_STAGE"
#define HUTCH_ENV_BUNDLE "_HUTCH_BUNDLE"
#define HUTCH_ENV_NSENTER "_HUTCH_NSENTER" // "PIDFD:SYNCFD:FLAGS", nsenter.c
#define HUTCH_ENV_JOIN "_HUTCH_JOIN"       // "HELLO:FD,FD,...", selfjoin.c

// The stages (the values of HUTCH_ENV_STAGE).
#define HUTCH_STAGE_SPAWN "spawn"
#define HUTCH_STAGE_SUPERVISOR "supervisor"
#define HUTCH_STAGE_INIT "init"
#define HUTCH_STAGE_EXEC "exec"
#define HUTCH_STAGE_HEALTH "health"
#define HUTCH_STAGE_CGROUP_KILL "cgroup-kill"

// The descriptors each stage finds.
#define HUTCH_INIT_FD_EXE 3
#define HUTCH_INIT_FD_SYNC 4
#define HUTCH_INIT_FD_ERROR 5
#define HUTCH_INIT_FD_CONFIG 6
#define HUTCH_EXEC_FD_EXE 3
#define HUTCH_EXEC_FD_SYNC 4
#define HUTCH_EXEC_FD_CONFIG 5
#define HUTCH_EXEC_FD_PIDFD 6

// Files of a container's bundle folder.
#define HUTCH_SPEC_FILE "config.json"
#define HUTCH_CONF_FILE "supervisor.conf"
#define HUTCH_STATE_FILE "process.json"
#define HUTCH_STOP_FILE "stop"
#define HUTCH_EVENTS_FILE "events.jsonl"
#define HUTCH_SUPERVISOR_LOG "supervisor.log"
#define HUTCH_LOG_DIR "logs"
#define HUTCH_LOG_NAME "container.log"

// The keys of supervisor.conf.
#define HUTCH_KEY_CONTAINER "container"
#define HUTCH_KEY_DIGEST "digest"
#define HUTCH_KEY_RESTART "restart"
#define HUTCH_KEY_MAX_RETRIES "max_retries"
#define HUTCH_KEY_STOP_SIGNAL "stop_signal"
#define HUTCH_KEY_STOP_TIMEOUT_NS "stop_timeout_ns"
#define HUTCH_KEY_LOG_MAX_SIZE "log_max_size"
#define HUTCH_KEY_LOG_MAX_FILES "log_max_files"
#define HUTCH_KEY_OOM_FILE "oom_file"
#define HUTCH_KEY_CLONE_FLAGS "clone_flags"
#define HUTCH_KEY_NETNS "netns"
#define HUTCH_KEY_UID_MAP "uid_map"
#define HUTCH_KEY_GID_MAP "gid_map"
#define HUTCH_KEY_CGROUP_PROCS "cgroup_procs"
#define HUTCH_KEY_HEALTH_KIND "health_kind"
#define HUTCH_KEY_HEALTH_PORT "health_port"
#define HUTCH_KEY_HEALTH_PATH "health_path"
#define HUTCH_KEY_HEALTH_INTERVAL_NS "health_interval_ns"
#define HUTCH_KEY_HEALTH_START_INTERVAL_NS "health_start_interval_ns"
#define HUTCH_KEY_HEALTH_TIMEOUT_NS "health_timeout_ns"
#define HUTCH_KEY_HEALTH_RETRIES "health_retries"
#define HUTCH_KEY_HEALTH_START_PERIOD_NS "health_start_period_ns"
#define HUTCH_KEY_HEALTH_ARG "health_arg"

// The limits.
#define HUTCH_CONF_MAX_CGROUPS 16
#define HUTCH_CONF_MAX_MAP 1000
#define HUTCH_CONF_MAX_VALUE 4000
#define HUTCH_HEALTH_MAX_ARGS 64
#define HUTCH_HEALTH_MAX_ARG_BYTES 16384
#define HUTCH_HEALTH_LOG_SIZE 5
#define HUTCH_HEALTH_OUTPUT_MAX 4096
#define HUTCH_EVENTS_MAX 1048576 // 1 MiB

#endif
