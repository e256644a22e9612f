//go:build linux

// Package fs (imported as fsdrv) builds container root filesystems on the
// host: the ELF dependency closure of the manifest's binaries, copies, inline
// files and folders, a content-addressed layer cache under the state root, and
// one overlay mount per container. It touches the host.
package fs
