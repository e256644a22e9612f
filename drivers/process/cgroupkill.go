//go:build linux

package process

import (
	"fmt"
	"os"
	"path/filepath"
)

// The helper stage the C supervisor runs for what still needs Go.

// cgroupKillMain kills every process of the container's cgroup for the C
// supervisor, when the stop timeout passed.
func cgroupKillMain(newCgroup CgroupFactory) int {
	c, cg, err := helperSetup(os.Getenv(envBundle), newCgroup)
	if err == nil && cg != nil {
		err = cg.KillAll(c.Cgroup)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "supervisor: %v\n", err)
		return 1
	}
	return 0
}

func helperSetup(bundle string, newCgroup CgroupFactory) (*supervisorConfig, CgroupJoiner, error) {
	var c supervisorConfig
	if err := readJSON(filepath.Join(bundle, configFile), &c); err != nil {
		return nil, nil, fmt.Errorf("supervisor: %w", err)
	}
	if c.Cgroup == "" {
		return &c, nil, nil
	}
	if newCgroup == nil {
		return nil, nil, fmt.Errorf("supervisor: cgroup %s: no cgroup driver", c.Cgroup)
	}
	cg, err := newCgroup(filepath.Dir(c.Cgroup))
	if err != nil {
		return nil, nil, fmt.Errorf("supervisor: %w", err)
	}
	return &c, cg, nil
}
