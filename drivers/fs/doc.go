//go:build linux

// Package fs (imported as fsdrv) builds container root filesystems on the
// host: the ELF dependency closure of the manifest's binaries, copies, inline
// files and folders, a content-addressed layer cache under the state root, and
// one overlay mount per container. It touches the host.
//
// A recipe (plan.Rootfs) is first resolved against the host: binaries are
// looked up on PATH, their libraries found by reading ELF headers
// (debug/elf) and /etc/ld.so.cache the way ld.so does, the python
// interpreter's standard library found by its landmark files the way python
// finds it at start, and every source file is lstat'ed. Nothing the recipe
// names is ever run (python.go). The resolved entries and the identity of their sources give
// the layer digest. A missing layer is written into a temporary folder with
// openat2(2) RESOLVE_IN_ROOT (no write can leave it), copy_file_range(2) and
// one syncfs(2), then renamed into <stateRoot>/layers/<digest>. Each container
// mounts overlayfs at <bundle>/rootfs with that layer as its lowerdir and its
// own upperdir and workdir.
//
// docs/rootfs.md explains the rules for users.
package fs
