//go:build linux

package process

// The contract between the Go and the C of this package (README.md draws
// the stages): the environment a stage of the hutch binary is run with,
// the stages, the descriptors each stage finds, the files of a bundle both
// sides read or write, the keys of supervisor.conf and the limits both
// keep. protocol.h holds the same names and values for C: each constant
// here is HUTCH_ and its name in capitals and underscores there
// (keyOOMFile is HUTCH_KEY_OOM_FILE), and TestProtocolAgrees checks that
// the two files name the same constants with the same values. Only these
// two files spell an environment name.

// The environment. A stage is named there, not on the command line, so
// that the CLI's parser never sees it.
const (
	envStage  = "_HUTCH_STAGE"  // the stage to run (below)
	envBundle = "_HUTCH_BUNDLE" // the container's bundle folder (spawn, supervisor, init, cgroup-kill)
	// envNsenter makes nsenter.c join a container's namespaces before
	// the Go runtime starts: "PIDFD:SYNCFD:FLAGS", a pidfd of the
	// container's init, a descriptor to read one byte from first, and
	// the CLONE_NEW* flags of the namespaces to join (exec, health).
	envNsenter = "_HUTCH_NSENTER"
	// envJoin makes selfjoin.c move an init started from Go into its v1
	// cgroups: "HELLO:FD,FD,...", a descriptor to write one byte to
	// (alive), then the tasks files to write "0" to (cgjoin.go).
	envJoin = "_HUTCH_JOIN"
)

// The stages of the hutch binary (the values of envStage).
const (
	stageSpawn      = "spawn"       // the first fork: setsid, start the supervisor, report, exit (supervisor_spawn.c)
	stageSupervisor = "supervisor"  // the per-container supervisor (supervisor.c)
	stageInit       = "init"        // the container's init, until it execs the workload (init.go)
	stageExec       = "exec"        // a process joining a container, after nsenter.c (exec.go)
	stageHealth     = "health"      // an exec health check's command, after nsenter.c (health.go)
	stageCgroupKill = "cgroup-kill" // kills the cgroup's processes for the supervisor (cgroupkill.go)
)

// The descriptors each stage finds.
const (
	// The init's: 0 /dev/null, 1 and 2 the workload's streams, then:
	initFdExe   = 3 // the sealed binary the init was executed from
	initFdSync  = 4 // read end: one byte once the init is in its cgroup (and its maps written)
	initFdError = 5 // write end, close-on-exec: an error message, or EOF at execve
	// initFdConfig carries config.json: the supervisor opens the file
	// as host root and passes the descriptor, `hutch run` writes it into
	// a pipe; either way the init need not open it (in a user namespace
	// the mapped root may have no right to read it).
	initFdConfig = 6

	// The exec stage's (exec and health):
	execFdExe    = 3 // the sealed binary it was executed from
	execFdSync   = 4 // read by nsenter.c: one byte once in the cgroup
	execFdConfig = 5 // exec: the execConfig as JSON; health: config.json
	execFdPidfd  = 6 // read by nsenter.c: a pidfd of the container's init
)

// Files of a container's bundle folder that the driver and the supervisor
// share, beside rootfs/ (state.go has the driver's own).
const (
	specFile      = "config.json"     // the OCI runtime configuration (plan.Build's), read by the init
	confFile      = "supervisor.conf" // written by the driver (writeConf), read by the supervisor at start and on SIGHUP
	stateFile     = "process.json"    // written by the supervisor: pids, status, exit, health (State)
	stopFile      = "stop"            // a stop request's timeout in nanoseconds, written before the SIGTERM
	eventsFile    = "events.jsonl"    // appended to by the supervisor (Event)
	supervisorLog = "supervisor.log"  // the spawn stage's and the supervisor's own errors
	logDir        = "logs"            // the container's log folder
	logName       = "container.log"   // its log, in CRI format, rotated to .1, .2, ...
)

// The keys of supervisor.conf: one "key value" line each, a key with
// several values repeated, a value that may hold a newline escaped
// (confEscaper).
const (
	keyContainer     = "container"
	keyDigest        = "digest"
	keyRestart       = "restart"         // never, on-failure, always
	keyMaxRetries    = "max_retries"     // on-failure's limit, 0 for none
	keyStopSignal    = "stop_signal"     // a number
	keyStopTimeoutNs = "stop_timeout_ns" // before SIGKILL
	keyLogMaxSize    = "log_max_size"    // bytes, 0 for no rotation
	keyLogMaxFiles   = "log_max_files"
	keyOOMFile       = "oom_file"     // the cgroup file with the oom_kill line
	keyCloneFlags    = "clone_flags"  // CLONE_NEW* of the init's new namespaces
	keyNetns         = "netns"        // the network namespace to join
	keyUIDMap        = "uid_map"      // a line of /proc/PID/uid_map, repeated
	keyGIDMap        = "gid_map"      // a line of /proc/PID/gid_map, repeated
	keyCgroupProcs   = "cgroup_procs" // each hierarchy's cgroup.procs, repeated

	keyHealthKind            = "health_kind" // tcp, http, exec; none without the key
	keyHealthPort            = "health_port"
	keyHealthPath            = "health_path"
	keyHealthIntervalNs      = "health_interval_ns"
	keyHealthStartIntervalNs = "health_start_interval_ns"
	keyHealthTimeoutNs       = "health_timeout_ns"
	keyHealthRetries         = "health_retries"
	keyHealthStartPeriodNs   = "health_start_period_ns"
	keyHealthArg             = "health_arg" // an exec check's argument, repeated, escaped
)

// What the supervisor holds, which the driver checks before it writes
// supervisor.conf, and what both keep of a health check and the events.
const (
	confMaxCgroups    = 16    // cgroup_procs lines
	confMaxMap        = 1000  // bytes of the uid_map (or gid_map) lines joined by newlines
	confMaxValue      = 4000  // bytes of one value
	healthMaxArgs     = 64    // health_arg lines
	healthMaxArgBytes = 16384 // of the arguments, each with its NUL
	healthLogSize     = 5     // check results kept in Health.Log, as Docker keeps them
	healthOutputMax   = 4096  // bytes of a check's output kept (HealthResult.Output)
	// eventsMax is the size at which the supervisor renames the events
	// file to events.jsonl.1 (replacing the one before) and starts a new
	// one: two files of at most this size, hours of a crash loop.
	eventsMax = 1 << 20
)
