package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"hutch/plan"
	"hutch/spec"
)

// newPlanCommand is `hutch plan`.
func newPlanCommand(h *host) *cobra.Command {
	var (
		files   []string
		output  string
		verbose bool
		explain bool
	)
	cmd := &cobra.Command{
		Use:   "plan -f FILE...",
		Short: "Show what apply would change on the host",
		Long: `plan reads the manifests, validates them, builds the desired state and prints the
changes that would make the host match it: + create, ~ update in place,
-/+ replace (delete, then create), - delete. Nothing is changed and nothing
is written, not even under --root, and no program a manifest names is run:
a rootfs is resolved by reading (ELF headers, python's landmark files), so
a manifest from someone else is safe to review with plan.

Exit status: 0 when nothing would change, 2 when something would, 1 on error.
Colour only on a terminal, and never when NO_COLOR is set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "human" && output != "json" && !(explain && output == "script") {
				return fmt.Errorf("plan: -o %q: expected human or json (or script, with --explain)", output)
			}
			_, d, err := loadDesired(files, h.opts)
			if err != nil {
				return err
			}
			changes, err := h.changes(cmd.Context(), d)
			if err != nil {
				return fmt.Errorf("plan: %w", err)
			}
			p, err := plan.NewPlan(changes)
			if err != nil {
				return fmt.Errorf("plan: %w", err)
			}
			w := cmd.OutOrStdout()
			if explain {
				// Beside each change, the kernel operation and the shell command.
				err = writeExplained(ctx(cmd), w, h, output, p, d, verbose)
			} else if output == "json" {
				err = p.JSON(w)
			} else {
				err = p.Render(w, plan.RenderOptions{Color: useColor(w), Verbose: verbose})
			}
			if err != nil {
				return fmt.Errorf("plan: write: %w", err)
			}
			if p.Summary().Changed() {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "manifest file, folder of *.yaml, or - for stdin (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "human", "output format: human or json")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list resources that stay as they are")
	cmd.Flags().BoolVar(&explain, "explain", false, "show each change's kernel operation and shell command; -o script writes a runnable bash script")
	cmd.MarkFlagRequired("file")
	return cmd
}

// loadDesired loads the manifests of the -f arguments, validates them, reads
// the seccomp profile files and the images they name and builds the
// desired state. Every
// verb that takes -f goes through it.
func loadDesired(files []string, o plan.Options) (*spec.Manifest, *plan.Desired, error) {
	// Every load and validation error of every document, at once, each
	// with file:line:col and its field path; nothing is built from a bad
	// manifest.
	m, err := spec.LoadAndValidate(files, os.Stdin)
	if err != nil {
		return nil, nil, err
	}
	if err := spec.Validate(m); err != nil {
		return nil, nil, err
	}
	// plan.Build reads nothing from the host: the profiles are read here.
	for _, path := range plan.SeccompPaths(m) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("seccomp profile: %w", err)
		}
		if o.SeccompProfiles == nil {
			o.SeccompProfiles = map[string][]byte{}
		}
		o.SeccompProfiles[path] = b
	}
	// The images rootfs.image names: read here, plan.Build reads nothing.
	if o.Images, err = readImages(m); err != nil {
		return nil, nil, err
	}
	if o, err = labOptions(m, o); err != nil {
		return nil, nil, err
	}
	d, err := plan.Build(m, o)
	if err != nil {
		return nil, nil, fmt.Errorf("build: %w", err)
	}
	return m, d, nil
}

// useColor reports whether w is a terminal and NO_COLOR is not set
// (https://no-color.org): a character device is a tty here, the way
// isatty(3) would answer without an ioctl.
func useColor(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
