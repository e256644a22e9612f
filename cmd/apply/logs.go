package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	processdrv "hutch/drivers/process"
)

// newLogsCommand is `hutch logs`.
func newLogsCommand(h *host) *cobra.Command {
	var follow, timestamps bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a container's stdout and stderr",
		Long: `logs prints what the container's processes wrote to stdout and stderr, as its
supervisor recorded it in the bundle's logs/ folder (rotated at the manifest's
size): stdout lines to stdout, stderr lines to stderr, oldest first. --tail N
prints only the last N lines; -f then keeps printing new lines until the
container's supervisor ends or Ctrl-C.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("logs", args); err != nil {
				return err
			}
			o := h.opts
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := h.process()
			if err != nil {
				return fmt.Errorf("logs: %w", err)
			}
			// What the container wrote reaches a terminal with its control
			// characters escaped; a pipe or file gets it byte for byte.
			return d.Logs(ctx, o.BundleDir(args[0]), processdrv.LogOptions{Follow: follow, Tail: tail, Timestamps: timestamps},
				terminalSafe(cmd.OutOrStdout()), terminalSafe(cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().IntVar(&tail, "tail", -1, "print only the last N lines (-1: all)")
	cmd.Flags().BoolVar(&timestamps, "timestamps", false, "print the time of each line first")
	return cmd
}
