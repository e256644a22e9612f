package main

import (
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	processdrv "hutch/drivers/process"
)

// newExecCommand is `hutch exec`.
func newExecCommand(h *host) *cobra.Command {
	var interactive, tty bool
	cmd := &cobra.Command{
		Use:   "exec NAME -- CMD [ARG...]",
		Short: "Run a command inside a running container",
		Long: `exec runs a command inside a running container: it joins every namespace of
the container's first process (user, cgroup, ipc, uts, net, pid, mount) and
its cgroup, and gets the same user, capabilities, no_new_privs, rlimits and
seccomp filter. The mount namespace is joined by a C constructor that runs
before the Go runtime starts its threads (see docs/runtime.md). hutch exits
with the command's exit status (128+N when a signal N ended it).

  hutch exec webserver -- ps aux
  hutch exec -it webserver -- sh`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("exec", args[:1]); err != nil {
				return err
			}
			d, err := h.process()
			if err != nil {
				return fmt.Errorf("exec: %w", err)
			}
			stdio := processdrv.Stdio{Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr()}
			if interactive || tty {
				stdio.In = os.Stdin
			}
			// The signals that would end hutch go to the command instead.
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
			defer signal.Stop(sigs)
			code, err := d.Exec(cmd.Context(), h.opts.BundleDir(args[0]), args[1:], stdio, tty, sigs)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "pass stdin to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal")
	return cmd
}
