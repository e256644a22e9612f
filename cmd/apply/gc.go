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
no container uses, and the temporary folders of layer builds that died: recipe
layers and the layers of images (rootfs.image) alike. A layer is in use while an
overlay has it as one of its lower folders, or while a container folder
(ROOT/containers/NAME/overlay) records it: a stopped container's overlay keeps
its layers. Layers are built again, from the host's files or unpacked from the
image, by the next apply that needs them. It prints the digest of each removed
layer.`,
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
