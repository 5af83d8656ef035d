//go:build unix && !linux

package localpg

import "syscall"

// sysProcAttr runs a child in its own process group, as cred when set. Only Linux can
// tell a child that its parent died.
func sysProcAttr(cred *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
