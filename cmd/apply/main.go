// Command hutch is the CLI of hutch, the declarative container runner: it
// wires the spec, plan and reconcile packages and the drivers together and
// touches nothing itself. Each verb lives in its own file and registers itself
// with the root command.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	processdrv "hutch/drivers/process"
	"hutch/plan"
	"hutch/reconcile"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

var rootCmd = &cobra.Command{
	Use:   "hutch",
	Short: "hutch builds Linux containers from scratch, declaratively",
	Long: `hutch builds Linux containers from scratch from a YAML manifest: a rootfs copied
from the host, a named network namespace with veth pairs, cgroup limits, security
settings and the process to run. Every step is an ordinary kernel mechanism.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// stateRoot is the --root flag: where hutch keeps its state (HUTCH_ROOT, else
// /var/lib/hutch).
var stateRoot string

func init() {
	def := os.Getenv("HUTCH_ROOT")
	if def == "" {
		def = plan.DefaultOptions().StateRoot
	}
	rootCmd.PersistentFlags().StringVar(&stateRoot, "root", def, "state folder (env HUTCH_ROOT)")
	rootCmd.PersistentPreRunE = checkStateRoot
}

// checkStateRoot checks the state root once, before a verb that reads or
// writes it runs (reconcile.CheckRoot: a folder owned by root that nobody
// else may write, never a symlink). It makes a missing root mode 0700,
// except for plan, which writes nothing.
func checkStateRoot(cmd *cobra.Command, args []string) error {
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

// options are the host paths the plan and the drivers use.
func options() plan.Options {
	o := plan.DefaultOptions()
	o.StateRoot = stateRoot
	return o
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

func run(args []string) int {
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
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
