//go:build linux

package fs_test

import (
	fsdrv "hutch/drivers/fs"
	"hutch/reconcile"
)

// The driver has reconcile.Driver's method set (checked here, in a test, so
// that the package itself never imports reconcile).
var _ reconcile.Driver = (*fsdrv.Driver)(nil)
