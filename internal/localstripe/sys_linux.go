package localstripe

import "syscall"

// sysProcAttr runs the server in its own process group and kills it should this process
// die first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
