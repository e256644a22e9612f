//go:build linux

// Package net (imported as netdrv) manages named network namespaces, veth
// pairs, addresses and routes through netlink. It touches the host.
package net
