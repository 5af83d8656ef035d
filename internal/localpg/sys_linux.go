package localpg

import "syscall"

// sysProcAttr runs a child in its own process group, as cred when set, and sends it
// deathSig should this process die first.
func sysProcAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred, Pdeathsig: deathSig}
}
