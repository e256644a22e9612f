//go:build linux

package process

import (
	"fmt"
	"os"
	"path/filepath"
)

// cgroupKillMain is the cgroup-kill stage, which the supervisor runs when
// the stop timeout passed: it kills every process of the container's
// cgroup through the cgroup driver (cgroup.kill on v2; freeze, kill, thaw
// on v1), the one thing the supervisor still leaves to Go: a rare path
// (an init that outlived its stop timeout), and a second copy of the
// cgroup driver's kill in C would buy nothing.
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

// helperSetup reads the bundle's supervisor.json and makes the cgroup
// driver for its cgroup (nil without one).
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
