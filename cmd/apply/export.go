package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/spf13/cobra"

	"hutch/plan"
)

func init() {
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
			_, d, err := loadDesired(files, options())
			if err != nil {
				return err
			}
			for _, c := range d.Containers {
				dir := filepath.Join(bundle, c.Name)
				if err := writeConfig(c, dir); err != nil {
					return fmt.Errorf("export %s: %w", c.Name, err)
				}
				if err := exportRootfs(c, filepath.Join(dir, c.Spec.Root.Path)); err != nil {
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
	rootCmd.AddCommand(cmd)
}

// writeConfig writes the container's config.json into its bundle folder.
func writeConfig(c *plan.Container, dir string) error {
	b, err := json.MarshalIndent(c.Spec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode config.json: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o644)
}

// exportRootfs fills the bundle's rootfs folder from the container's rootfs
// recipe. Until drivers/fs builds rootfs trees, it makes the folder
// config.json's root.path names and the recipe's empty folders (mount points
// included), so the bundle is complete in form; the fs driver's Export takes
// its place.
func exportRootfs(c *plan.Container, root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, r := range c.Resources {
		rf, ok := r.(*plan.Rootfs)
		if !ok {
			continue
		}
		for _, d := range rf.Dirs {
			// Resolved inside root: a path with .. or a symlink already in
			// the folder cannot lead out of it.
			p, err := securejoin.SecureJoin(root, d.Path)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(p, os.FileMode(d.Mode&0o777)|modeBits(d.Mode)); err != nil {
				return err
			}
		}
	}
	return nil
}

// modeBits turns the setuid, setgid and sticky bits of a numeric mode into
// Go's os.FileMode flags (os.Chmod ignores the numeric ones).
func modeBits(m uint32) os.FileMode {
	var fm os.FileMode
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}
