package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"hutch/plan"
	"hutch/reconcile"
)

// runFailed is the exit status of a `hutch run` that failed itself (a bad
// manifest, a step that failed, a process that could not start), as docker
// and podman use it: every other status is the workload's.
const runFailed = 125

// forwarded are the signals `hutch run` passes on to the container's first
// process instead of ending itself.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}

// newRunCommand is `hutch run`.
func newRunCommand(h *host) *cobra.Command {
	var (
		file    string
		rm      bool
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "run [--rm] -f FILE",
		Short: "Run the manifest's one container in the foreground and exit with its status",
		Long: `run makes the container of a manifest with exactly one container document, as
apply would (rootfs, network namespace, veth pairs, addresses, routes,
cgroup), then runs its process in the foreground: a child of hutch itself
(no supervisor, no log file) with hutch's standard input, output and error.
It forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the
container's first process, waits for it, and exits with its status: its
exit code, or 128+N when signal N ended it. The container's first process
is pid 1 of its pid namespace, and the kernel discards a signal that pid 1
has no handler for: a forwarded SIGINT, SIGTERM, SIGHUP or SIGQUIT it would
ignore so kills it with SIGKILL, and the status is 128 plus the forwarded
signal, as its default action would have given.

With --rm, every object of the container is deleted once the process has
ended (or when the run fails), as 'hutch delete' would. Without it the
container stays: 'hutch get' shows its process exited with its status,
'hutch apply' of the same manifest starts it again under a supervisor, and
'hutch delete' removes it.

Every step is recorded in the state store before it starts, so a run that
is killed leaves nothing 'hutch delete -f FILE' cannot find (its process is
killed by its pid and cgroup). A container whose process already runs
(under 'hutch apply' or another 'hutch run') is an error, and nothing
changes. Exit status 125 means hutch run itself failed (also when the
process succeeded and --rm could not remove everything; when the process
failed, its status wins and the removal's error is printed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// From the start: a Ctrl-C while the container is being made
			// reaches the process as soon as it runs.
			sigs := make(chan os.Signal, 16)
			signal.Notify(sigs, forwarded...)
			defer signal.Stop(sigs)
			var out io.Writer = io.Discard
			if verbose {
				out = cmd.ErrOrStderr()
			}
			code, err := runOne(cmd, h, file, rm, out, sigs)
			if err != nil && code > 0 {
				// The process ran and failed, and --rm's removal failed
				// too: both are said, the status is the workload's.
				return &exitError{code: code, err: fmt.Errorf("run: %w", err)}
			}
			if err != nil {
				return &exitError{code: runFailed, err: fmt.Errorf("run: %w", err)}
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "manifest file with one container document, or - for stdin")
	cmd.Flags().BoolVar(&rm, "rm", false, "delete the container once its process has ended")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print the plan and each step on stderr")
	cmd.MarkFlagRequired("file")
	return cmd
}

// runOne loads and validates the manifest as apply does, checks that it
// holds one container, and runs it through the reconciler.
func runOne(cmd *cobra.Command, h *host, file string, rm bool, out io.Writer, sigs <-chan os.Signal) (int, error) {
	runTrace("run: loading " + file)
	_, d, err := loadDesired([]string{file}, h.opts)
	if err != nil {
		return -1, err
	}
	if err := oneContainer(file, d); err != nil {
		return -1, err
	}
	want, err := reconcile.FromDesired(d)
	if err != nil {
		return -1, err
	}
	ds, err := h.drivers()
	if err != nil {
		return -1, err
	}
	r, err := newReconciler(h, ds, out)
	if err != nil {
		return -1, err
	}
	r.Verbose = true // out is stderr with --verbose, else nothing
	runTrace("run: loaded, planned, drivers made")
	stdin := io.Reader(os.Stdin)
	if file == "-" {
		stdin = nil // read to its end for the manifest
	}
	return r.Run(ctx(cmd), want[0], reconcile.RunOptions{
		Remove:  rm,
		Stdin:   stdin,
		Stdout:  cmd.OutOrStdout(),
		Stderr:  cmd.ErrOrStderr(),
		Signals: sigs,
		// A Ctrl-C, a kill or a closed terminal while another hutch holds
		// the container ends the wait for it.
		Interrupts: func(s os.Signal) bool {
			return s == unix.SIGINT || s == unix.SIGTERM || s == unix.SIGHUP || s == unix.SIGQUIT
		},
	})
}

// oneContainer says why a manifest is not one container.
func oneContainer(file string, d *plan.Desired) error {
	switch n := len(d.Containers); n {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("%s: no container document (hutch run runs exactly one)", file)
	default:
		names := make([]string, n)
		for i, c := range d.Containers {
			names[i] = c.Name
		}
		return fmt.Errorf("%s: %d container documents (%s): hutch run runs exactly one; give it a file with one, or use hutch apply", file, n, strings.Join(names, ", "))
	}
}

// runTrace prints msg on stderr with the time, as the reconciler's trace does,
// when HUTCH_TRACE is set: where the time before the reconciler goes.
func runTrace(msg string) {
	if os.Getenv("HUTCH_TRACE") != "" {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05.000000"), msg)
	}
}
