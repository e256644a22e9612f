//go:build linux

package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Health checks, as the supervisor runs them (supervisor_health.c, from
// its poll(2) loop):
//
//   - At each start of the process the state is starting. Checks run every
//     StartInterval until one passes, then every Interval (each counted
//     from the end of the check before).
//   - A passing check makes it healthy and the failing streak 0. A failing
//     check outside StartPeriod (counted from the process's start) adds one
//     to the streak; Retries in a row make it unhealthy, and the checks go
//     on every Interval (a later pass makes it healthy again).
//   - A check that takes longer than Timeout fails; an exec check's process
//     group is then killed with SIGKILL.
//   - No check runs while the process does not (back-off, exited) or is
//     being stopped; a check in flight then is dropped.
//
// tcp and http checks are made by the supervisor itself: a socket made in
// the container's network namespace (setns(2) only long enough to create
// it; a socket keeps the namespace it was made in) connects to 127.0.0.1,
// without a process start. An exec check runs the command as `hutch exec`
// does (exec.go, nsenter.c): a short-lived exec stage of the sealed hutch
// binary joins every namespace of the container's init through a pidfd,
// runs in the container's cgroup, and takes the container's user,
// capabilities, no_new_privs, rlimits and seccomp filter before it executes
// the command; its stdin is /dev/null and it runs in a session of its own
// without a terminal.

// healthExecMain is the exec stage of an exec health check: nsenter.c has
// joined the container's namespaces and forked, so this process is inside
// the container. It reads config.json (the supervisor opened it on the host
// and passed the descriptor: the stage cannot reach the bundle from inside),
// takes the container's process settings with argv's command, and execs it
// as execMain does for `hutch exec`.
func healthExecMain() {
	f := os.NewFile(execFdConfig, specFile)
	var spec specs.Spec
	if err := json.NewDecoder(f).Decode(&spec); err != nil {
		fail(nil, fmt.Errorf("health check: read config: %w", err))
	}
	f.Close()
	if spec.Process == nil || len(os.Args) < 2 {
		fail(nil, errors.New("health check: no command"))
	}
	p := *spec.Process
	p.Args = os.Args[1:]
	p.Terminal = false
	if err := finishAndExec(&p, seccompOf(&spec)); err != nil {
		fmt.Fprintf(os.Stderr, "health check: %v\n", err)
		os.Exit(127)
	}
}
