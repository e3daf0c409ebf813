//go:build unix && !linux

package testenv

import "syscall"

// childProcAttr puts a child in its own process group so Close can signal all it spawned. Outside Linux
// there is no parent-death signal: a killed test binary can leave its servers running.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
