package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"hutch/spec"
)

// newValidateCommand is `hutch validate`.
func newValidateCommand() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE...",
		Short: "Check manifests without touching the host",
		Long: `validate reads the manifests strictly (unknown fields, duplicate keys and wrong
types are errors) and checks every value and every rule between values and
documents: names, interface names, addresses and subnets, routes, ports, paths,
modes, capabilities, quantities, mounts, rlimits and user namespace mappings.
An image named by rootfs.image is read (its index, manifest and config, and
/etc/passwd from its layers when its user is a name); nothing is written.

-f takes a file, a folder (its *.yaml and *.yml files, sorted) or - for standard
input, and may be repeated. Every error of every document is reported at once,
one per line: file:line:col: field.path: what is wrong (what was expected).

Exit status: 0 when every manifest is valid (one summary line on stdout), 1 when
one is not (the errors on stderr).`,
		Example: `  hutch validate -f manifests/webserver.yaml
  hutch validate -f manifests/ -f extra.yaml
  cat web.yaml | hutch validate -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := spec.LoadAndValidate(files, cmd.InOrStdin())
			if err == nil {
				// An image is read (never written or run): a missing
				// path or tag is an error at its line, as any other.
				_, err = readImages(m)
			}
			var errs spec.Errors
			if errors.As(err, &errs) {
				errs.Sort()
				w := cmd.ErrOrStderr()
				for _, e := range errs {
					fmt.Fprintln(w, e)
				}
				fmt.Fprintf(w, "%s in %s\n", count(len(errs), "error"), count(len(fileSet(errs, nil)), "file"))
				return &exitError{code: 1}
			}
			if err != nil {
				return fmt.Errorf("validate: %w", err)
			}
			names := make([]string, len(m.Containers))
			for i, c := range m.Containers {
				names[i] = c.Metadata.Name
			}
			if len(names) == 0 {
				return fmt.Errorf("validate: the manifests hold no container")
			}
			what := count(len(names), "container")
			if len(m.Networks) > 0 {
				what += ", " + count(len(m.Networks), "network")
			}
			if len(m.Links) > 0 {
				what += ", " + count(len(m.Links), "link")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "valid: %s in %s (%s)\n", what,
				count(len(fileSet(nil, m.Containers)), "file"), joinNames(names))
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "manifest file, folder of *.yaml, or - for stdin (repeatable)")
	cmd.MarkFlagRequired("file")
	return cmd
}

// fileSet is the set of files the errors or containers come from.
func fileSet(errs spec.Errors, cs []*spec.Container) map[string]bool {
	set := map[string]bool{}
	for _, e := range errs {
		set[e.File] = true
	}
	for _, c := range cs {
		set[c.Source.File] = true
	}
	return set
}

func count(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// joinNames lists container names, at most 8 of them.
func joinNames(names []string) string {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	if len(sorted) > 8 {
		return fmt.Sprintf("%s, and %d more", strings.Join(sorted[:8], ", "), len(sorted)-8)
	}
	return strings.Join(sorted, ", ")
}
