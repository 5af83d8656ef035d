//go:build unix && !linux

package localstripe

import "syscall"

// sysProcAttr runs the server in its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
