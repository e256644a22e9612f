package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"hutch/spec"
)

// newDeleteCommand is `hutch delete`.
func newDeleteCommand(h *host) *cobra.Command {
	var (
		files          []string
		ignoreNotFound bool
		noWait         bool
		orphans        bool
	)
	cmd := &cobra.Command{
		Use:   "delete (-f FILE... | NAME... | --orphans)",
		Short: "Remove every trace of containers",
		Long: `delete stops each container's process, then removes, in the reverse order of
their making, every host object the state store records for it (cgroup,
addresses, veth, network namespace, rootfs overlay), and finally the
container's folder in the state store. It needs no manifest: the store knows
what hutch made. A failure does not stop it: it carries on with the rest and
reports every failure; running it again finishes the job.

With -f, the containers are those the manifests name, and one that does not
exist (already deleted) is not an error. By NAME, an unknown name is an error
unless --ignore-not-found.

When the store lost its record of a container (its folder was removed, an
apply was killed before its first write), delete still finds what hutch made
for it by the marks hutch puts on the host, and removes that too: network
namespaces whose lo carries the alias hutch:NAME, host interfaces with that
alias, the cgroup hutch/NAME, mounts under ROOT/containers/NAME/rootfs, and a
supervisor whose environment names the bundle ROOT/containers/NAME (a root
process executing hutch's own binary). An object without such a mark, or
with another container's, is never touched, whatever it is called. When a
container of the same name runs from another state root, its objects are
left alone and the error names that root.

With --orphans, delete removes every container that hutch's marks name but
the state store (of --root) has no record of. Namespaces, interfaces and
cgroups are marked with the container's name only, not with a state root:
a container of another state root whose supervisor and overlay are gone
looks like an orphan too. Run it with the --root that made them.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("delete", args); err != nil {
				return err
			}
			if len(files) == 0 && len(args) == 0 && !orphans {
				return fmt.Errorf("delete: name containers, give -f FILE, or --orphans")
			}
			ds, err := h.drivers()
			if err != nil {
				return err
			}
			r, err := newReconciler(h, ds, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			r.NoWait = noWait
			var errs []error
			if orphans {
				if err := r.DeleteOrphans(ctx(cmd)); err != nil {
					errs = append(errs, err)
				}
			}
			if len(files) > 0 {
				m, err := spec.Load(files, os.Stdin)
				if err != nil {
					return err
				}
				var names []string
				for _, c := range m.Containers {
					names = append(names, c.Metadata.Name)
				}
				// A lab's networks and links go in the same run, after
				// the containers on them.
				for _, n := range m.Networks {
					names = append(names, n.Metadata.Name)
				}
				for _, l := range m.Links {
					names = append(names, l.Metadata.Name)
				}
				if err := r.Delete(ctx(cmd), names, true); err != nil {
					errs = append(errs, err)
				}
			}
			if len(args) > 0 {
				if err := r.Delete(ctx(cmd), args, ignoreNotFound); err != nil {
					errs = append(errs, err)
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("delete: %w", joinErrs(errs))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "manifest file, folder of *.yaml, or - for stdin (repeatable)")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "a NAME hutch does not know is not an error")
	cmd.Flags().BoolVar(&orphans, "orphans", false, "also delete every container hutch's marks on the host name but the state store does not know")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "fail at once when another hutch is working on a container")
	return cmd
}

type errList []error

func (e errList) Error() string {
	s := ""
	for i, err := range e {
		if i > 0 {
			s += "\n"
		}
		s += err.Error()
	}
	return s
}

func (e errList) Unwrap() []error { return e }

func joinErrs(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errList(errs)
}
