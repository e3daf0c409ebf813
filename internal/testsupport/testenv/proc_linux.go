package testenv

import "syscall"

// childProcAttr puts a child in its own process group (so Close can signal all it spawned) and has the
// kernel kill it when the parent dies, so a crashed test binary leaves no servers behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
