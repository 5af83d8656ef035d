//go:build unix && !linux

package localcrdb

import "syscall"

// sysProcAttr runs the node in its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
