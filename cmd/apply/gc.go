package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newGCCommand is `hutch gc`.
func newGCCommand(h *host) *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Remove cached rootfs layers that no container uses",
		Long: `gc removes the rootfs layers in the state root's layer cache (ROOT/layers) that
no container uses, and the temporary folders of layer builds that died. A layer
is in use while an overlay has it as its lower folder, or while a container
folder (ROOT/containers/NAME/overlay) records it: a stopped container's overlay
keeps its layer. Layers are built again, from the host's files, by the next
apply that needs them. It prints the digest of each removed layer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			removed, err := h.rootfs().GC(nil)
			for _, d := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed layer %s\n", d)
			}
			if err != nil {
				return err
			}
			if len(removed) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no unused layers")
			}
			return nil
		},
	}
}
