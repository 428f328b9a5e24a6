package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// devProc is a `rosetta dev` process a test started.
type devProc struct {
	t      *testing.T
	logs   *testkit.LogBuffer
	exited chan error
}

// startDev starts `bin dev` with env, stops it (SIGTERM, then SIGKILL after
// 40 s) when the test ends, printing its output if the test failed, and
// waits until its API listens on httpAddr.
func startDev(t *testing.T, bin string, env []string, httpAddr string) *devProc {
	t.Helper()
	d := &devProc{t: t, logs: &testkit.LogBuffer{}, exited: make(chan error, 1)}
	cmd := exec.Command(bin, "dev")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = d.logs, d.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("rosetta dev output:\n%s", d.logs.Tail(20000))
		}
	})
	d.waitUntil("API up", 90*time.Second, func() bool {
		return strings.Contains(d.logs.String(), "API listening on http://"+httpAddr)
	})
	return d
}

// waitUntil polls cond until it holds; rosetta dev exiting fails.
func (d *devProc) waitUntil(what string, timeout time.Duration, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: not within %s", what, timeout)
		}
		select {
		case err := <-d.exited:
			d.t.Fatalf("rosetta dev exited: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
