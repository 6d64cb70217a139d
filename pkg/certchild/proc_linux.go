package certchild

import "syscall"

// sysProcAttr kills the child when the daemon dies (its stdin's EOF is the
// other way it learns).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
