// Command hutch is the CLI of hutch, the declarative container runner: it
// wires the spec, plan and reconcile packages and the drivers together and
// touches nothing itself. Each verb lives in its own file, as a constructor
// of its command; main builds the root command from them, on one host
// (host.go) that makes each driver once.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	processdrv "hutch/drivers/process"
	"hutch/reconcile"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// newRootCommand builds hutch's command tree: every verb, working on h.
// --root sets h's state root (HUTCH_ROOT, else /var/lib/hutch, is h's
// from defaultOptions).
func newRootCommand(h *host) *cobra.Command {
	root := &cobra.Command{
		Use:   "hutch",
		Short: "hutch builds Linux containers from scratch, declaratively",
		Long: `hutch builds Linux containers from scratch from a YAML manifest: a rootfs copied
from the host, a named network namespace with veth pairs, cgroup limits, security
settings and the process to run. Every step is an ordinary kernel mechanism.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return checkStateRoot(cmd, h.opts.StateRoot)
		},
	}
	root.PersistentFlags().StringVar(&h.opts.StateRoot, "root", h.opts.StateRoot, "state folder (env HUTCH_ROOT)")
	// In the order cobra lists them (by name) anyway, one line each.
	root.AddCommand(
		newApplyCommand(h),
		newDeleteCommand(h),
		newEventsCommand(h),
		newExecCommand(h),
		newExportCommand(h),
		newGCCommand(h),
		newGetCommand(h),
		newInspectCommand(h),
		newLogsCommand(h),
		newPlanCommand(h),
		newRunCommand(h),
		newStatsCommand(h),
		newStopCommand(h),
		newValidateCommand(),
		newVersionCommand(),
	)
	return root
}

// checkStateRoot checks the state root once, before a verb that reads or
// writes it runs (reconcile.CheckRoot: a folder owned by root that nobody
// else may write, never a symlink). It makes a missing root mode 0700,
// except for plan, which writes nothing.
func checkStateRoot(cmd *cobra.Command, stateRoot string) error {
	for c := cmd; c != nil; c = c.Parent() {
		switch c.Name() {
		case "version", "validate", "help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return nil
		}
	}
	return reconcile.CheckRoot(stateRoot, cmd.Name() != "plan")
}

// checkNames refuses, before anything else, a NAME argument that cannot be
// a container's (reconcile.CheckName, metadata.name's rule): every name
// becomes a path under the state root, and `hutch exec ../../../tmp/x`
// must touch nothing.
func checkNames(verb string, names []string) error {
	for _, n := range names {
		if err := reconcile.CheckName(n); err != nil {
			return fmt.Errorf("%s: %w", verb, err)
		}
	}
	return nil
}

// exitError carries an exit code other than 1 out of a verb (for example
// `plan`'s 2 for "changes pending").
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func main() {
	// The binary is also each container's spawner, supervisor and init
	// (re-executed by drivers/process); those stages never reach the CLI.
	if processdrv.Reexec(newCgroupJoiner) {
		return
	}
	os.Exit(run(os.Args[1:]))
}

// run runs hutch's command line on this host and returns the exit status.
func run(args []string) int {
	return execute(newRootCommand(newHost(defaultOptions())), args)
}

// execute runs root with args: 0, the exit code a verb asked for, or 1
// with the error on stderr.
func execute(root *cobra.Command, args []string) int {
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exitError); ok {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "hutch:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "hutch:", err)
	return 1
}
