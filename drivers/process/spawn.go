//go:build linux

package process

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"syscall"

	"hutch/plan"
)

// readyMsg is the supervisor's report on the first start, passed up through
// the spawn stage to the driver.
type readyMsg struct {
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// spawn starts the container of p under a new supervisor: it runs the
// spawn stage (supervisor.c's constructor, in a new session: setsid(2))
// and waits for it, which starts the supervisor, passes on the
// supervisor's report of the first start and exits. It returns the pid of
// the container's first process.
func (d *Driver) spawn(p *plan.Process) (int, error) {
	var out bytes.Buffer
	cmd := &exec.Cmd{
		Path:        d.exe,
		Args:        []string{"hutch-spawn", p.Container},
		Env:         []string{envStage + "=" + stageSpawn, envBundle + "=" + p.Bundle},
		Dir:         "/",
		Stdout:      &out,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	runErr := cmd.Run()
	var m readyMsg
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		if runErr != nil {
			return 0, fmt.Errorf("container %s: start supervisor: %w", p.Container, runErr)
		}
		return 0, fmt.Errorf("container %s: start supervisor: bad report %q: %w", p.Container, out.String(), err)
	}
	if m.Error != "" {
		return 0, fmt.Errorf("container %s: %s", p.Container, m.Error)
	}
	return m.PID, nil
}
