package localcrdb

import "syscall"

// sysProcAttr runs the node in its own process group and asks it to shut down should
// this process die first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
