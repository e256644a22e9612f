//go:build linux

// Package inspect reads back from the kernel what hutch made for a
// container, a network or a link: the state store says which objects those
// are (hutch's record, not a guess by name), the drivers read each one as
// the kernel holds it now. It is what hutch inspect and hutch stats show;
// cmd/apply only formats it. It only reads the host.
package inspect

import (
	cgroupdrv "hutch/drivers/cgroup"
	netdrv "hutch/drivers/net"
	processdrv "hutch/drivers/process"
	"hutch/reconcile"
)

// Reader reads through the state store and the drivers it is given; a
// reading needs only some of them (Unit: Net and Sysctl; Stats: Cgroup and
// Net; Container: all but Sysctl).
type Reader struct {
	Store   *reconcile.Store
	Cgroup  *cgroupdrv.Driver
	Net     *netdrv.Driver
	Sysctl  *netdrv.SysctlDriver
	Process *processdrv.Driver
}
