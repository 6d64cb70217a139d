//go:build !linux

package certchild

import "syscall"

// sysProcAttr: without Pdeathsig the child learns of the daemon's death by
// its stdin's EOF.
func sysProcAttr() *syscall.SysProcAttr { return nil }
