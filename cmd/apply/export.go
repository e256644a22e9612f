package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	fsdrv "hutch/drivers/fs"
	"hutch/plan"
	"hutch/reconcile"
)

// newExportCommand is `hutch export`.
func newExportCommand(h *host) *cobra.Command {
	var (
		files  []string
		bundle string
	)
	cmd := &cobra.Command{
		Use:   "export -f FILE... --bundle DIR",
		Short: "Write each container as an OCI bundle (config.json and rootfs/)",
		Long: `export builds the desired state of the manifests and writes one OCI bundle per
container: DIR/NAME/config.json, the runtime-spec configuration hutch runs, and
DIR/NAME/rootfs, so that runc, crun or oci-runtime-tool can read it. The host
is not otherwise touched: no namespace, link or cgroup is made.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, d, err := loadDesired(files, h.opts)
			if err != nil {
				return err
			}
			for _, c := range d.Containers {
				dir := filepath.Join(bundle, c.Name)
				if err := writeConfig(c, dir); err != nil {
					return fmt.Errorf("export %s: %w", c.Name, err)
				}
				if err := exportRootfs(h.rootfs(), c, filepath.Join(dir, c.Spec.Root.Path)); err != nil {
					return fmt.Errorf("export %s: rootfs: %w", c.Name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", dir)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "manifest file, folder of *.yaml, or - for stdin (repeatable)")
	cmd.Flags().StringVar(&bundle, "bundle", "", "folder to write one bundle per container into")
	cmd.MarkFlagRequired("file")
	cmd.MarkFlagRequired("bundle")
	return cmd
}

// writeConfig writes the container's config.json into its bundle folder.
func writeConfig(c *plan.Container, dir string) error {
	b, err := reconcile.ConfigJSON(c.Spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
}

// exportRootfs writes the container's rootfs into the bundle: a plain copy
// of the layer drivers/fs builds from the recipe (binaries with their
// libraries, python, copies, inline files, folders).
func exportRootfs(fs *fsdrv.Driver, c *plan.Container, root string) error {
	for _, r := range c.Resources {
		if rf, ok := r.(*plan.Rootfs); ok {
			return fs.Export(context.Background(), rf, root)
		}
	}
	return os.MkdirAll(root, 0o755)
}
