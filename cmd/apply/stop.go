package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// newStopCommand is `hutch stop`.
func newStopCommand(h *host) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop NAME...",
		Short: "Stop containers: the stop signal, then SIGKILL after the timeout",
		Long: `stop asks each container's supervisor to stop it: the supervisor sends the
manifest's stop signal (SIGTERM by default) to the container's first process,
and when it has not ended after the timeout (the manifest's, or --timeout),
SIGKILL to every process in the container's cgroup. The container stays
stopped (no restart) until the next apply; its network, cgroup and rootfs
stay as they are.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("stop", args); err != nil {
				return err
			}
			o := h.opts
			d, err := h.process()
			if err != nil {
				return fmt.Errorf("stop: %w", err)
			}
			var errs []error
			for _, name := range args {
				if _, err := os.Stat(o.BundleDir(name)); err != nil {
					errs = append(errs, fmt.Errorf("stop %s: no such container (%w)", name, err))
					continue
				}
				if err := d.Stop(cmd.Context(), o.BundleDir(name), timeout); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			if len(errs) == 0 {
				return nil
			}
			return joinErrs(errs)
		},
	}
	cmd.Flags().DurationVarP(&timeout, "timeout", "t", -1, "wait this long for the stop signal before SIGKILL (default: the manifest's stop timeout)")
	return cmd
}
