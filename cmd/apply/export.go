package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"hutch/export"
	"hutch/plan"
	"hutch/reconcile"
)

// exportOptions are the flags of `hutch export`.
type exportOptions struct {
	files      []string
	format     string
	output     string
	bundle     string
	repository string
	tag        string
}

// newExportCommand is `hutch export`.
func newExportCommand(h *host) *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export -f FILE... (--bundle DIR | --format bundle|oci-image|kube --output DIR)",
		Short: "Write each container as an OCI bundle, an OCI image, or Kubernetes YAML",
		Long: `export builds the desired state of the manifests and writes each container in
the form another tool runs:

  --format bundle (or --bundle DIR): DIR/NAME/config.json, the runtime-spec
      configuration hutch runs, and DIR/NAME/rootfs, which runc, crun or
      oci-runtime-tool read.
  --format oci-image: DIR/NAME/, an OCI image layout (index.json names the image
      by its tag), and DIR/NAME.tar, a docker-archive that podman load and
      docker load read, both tagged REPOSITORY/NAME:TAG
      (localhost/hutch/NAME:latest unless --repository and --tag say
      otherwise). One layer, the container's rootfs; the process's args are
      the entrypoint, with its env, working folder and user.
  --format kube: the images as oci-image writes them, and DIR/kube.yaml: a Pod
      per container, a Service per published port and a NetworkPolicy per
      network, for kubectl apply or podman kube play; what has no Kubernetes
      form is named in a comment at its object (docs/kubernetes.md).

The same manifest and host files give the same image digests. The host is not
otherwise touched: no namespace, link or cgroup is made; only DIR and hutch's
layer cache are written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.resolve(); err != nil {
				return err
			}
			return runExport(cmd, h, o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "file", "f", nil, "manifest file, folder of *.yaml, or - for stdin (repeatable)")
	f.StringVar(&o.format, "format", "", "bundle (the default), oci-image or kube")
	f.StringVar(&o.output, "output", "", "folder to write into")
	f.StringVar(&o.bundle, "bundle", "", "folder to write one bundle per container into (--format bundle --output DIR)")
	f.StringVar(&o.repository, "repository", export.DefaultRepository, "images are named REPOSITORY/NAME:TAG")
	f.StringVar(&o.tag, "tag", export.DefaultTag, "the tag of every image")
	cmd.MarkFlagRequired("file")
	return cmd
}

// resolve checks the flags and folds --bundle DIR into --format bundle
// --output DIR.
func (o *exportOptions) resolve() error {
	if o.bundle != "" {
		if o.format != "" && o.format != "bundle" {
			return fmt.Errorf("export: --bundle writes bundles; with --format %s give --output", o.format)
		}
		if o.output != "" {
			return fmt.Errorf("export: give --bundle DIR or --output DIR, not both")
		}
		o.format, o.output = "bundle", o.bundle
	}
	if o.format == "" {
		o.format = "bundle"
	}
	switch o.format {
	case "bundle", "oci-image", "kube":
	default:
		return fmt.Errorf("export: --format %q: want bundle, oci-image or kube", o.format)
	}
	if o.output == "" {
		return fmt.Errorf("export: --output DIR (or --bundle DIR) is required")
	}
	return nil
}

// runExport writes every container of the manifests in o.format.
func runExport(cmd *cobra.Command, h *host, o exportOptions) error {
	m, d, err := loadDesired(o.files, h.opts)
	if err != nil {
		return err
	}
	if o.format == "bundle" {
		for _, c := range d.Containers {
			dir := filepath.Join(o.output, c.Name)
			if err := writeConfig(c, dir); err != nil {
				return fmt.Errorf("export %s: %w", c.Name, err)
			}
			if err := exportRootfs(h.rootfs().Export, c, filepath.Join(dir, c.Spec.Root.Path)); err != nil {
				return fmt.Errorf("export %s: rootfs: %w", c.Name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", dir)
		}
		return nil
	}
	refs := map[string]string{}
	for _, c := range d.Containers {
		w, err := exportImage(h.rootfs(), c, specContainer(m, c.Name), o)
		if err != nil {
			return fmt.Errorf("export %s: %w", c.Name, err)
		}
		refs[c.Name] = w.Ref
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", w.Layout, w.Archive, w.Ref)
	}
	if o.format == "kube" {
		p, err := writeKube(m, d, refs, o)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s\n", p)
	}
	return nil
}

// writeConfig writes the container's config.json into its bundle folder,
// which is root's alone (0700, also when it was there before): its rootfs
// is a plain folder of the host, neither nosuid nor nodev as the
// container's overlay is, and may hold an image's setuid programs and
// device nodes, which no other user may reach through it.
func writeConfig(c *plan.Container, dir string) error {
	b, err := reconcile.ConfigJSON(c.Spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// A folder another user made (or a symlink planted there) would stay
	// theirs whatever its mode: refused. lstat, so a symlink is not
	// followed to a folder of root's.
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 {
		return fmt.Errorf("bundle %s: not a folder of root's (uid %d): export into a folder only root can write", dir, st.Uid)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	// Written to a new file and renamed into place: a config.json symlink
	// planted beforehand is replaced, never followed.
	tmp := filepath.Join(dir, ".config.json.tmp")
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "config.json"))
}

// exportRootfs writes the container's rootfs into root with export:
// drivers/fs's Export for a bundle (the rootfs as the container sees it,
// an image's layers included), its ExportLayer for an image (the layer of
// the recipe alone: binaries with their libraries, python, copies, inline
// files, folders).
func exportRootfs(export func(context.Context, *plan.Rootfs, string) error, c *plan.Container, root string) error {
	if rf := rootfsOf(c); rf != nil {
		return export(context.Background(), rf, root)
	}
	return os.MkdirAll(root, 0o755)
}

// rootfsOf is the container's rootfs resource, or nil.
func rootfsOf(c *plan.Container) *plan.Rootfs {
	for _, r := range c.Resources {
		if rf, ok := r.(*plan.Rootfs); ok {
			return rf
		}
	}
	return nil
}
