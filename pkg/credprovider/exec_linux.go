package credprovider

import (
	"os/exec"
	"syscall"
)

// ownGroup runs the plugin in a process group of its own, and a deadline
// kills the whole group: a plugin's children (a shell script's commands)
// do not outlive the run.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
