package testbed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Daemon is an nri-csig process connected to a Containerd as an external
// NRI plugin.
type Daemon struct {
	LogPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error
}

// StartDaemon runs "nri-csigd run" against c with the given node config file
// (empty: none) and extra flags, and waits until it has registered with NRI.
func (c *Containerd) StartDaemon(config string, extra ...string) (*Daemon, error) {
	d, err := c.LaunchDaemon(config, extra...)
	if err != nil {
		return nil, err
	}
	if err := d.WaitRegistered(1, 15*time.Second); err != nil {
		d.Kill()
		return nil, err
	}
	return d, nil
}

// LaunchDaemon starts "nri-csigd run" without waiting for it to register.
func (c *Containerd) LaunchDaemon(config string, extra ...string) (*Daemon, error) {
	logPath := filepath.Join(c.Dir, fmt.Sprintf("nri-csig-%d.log", seq.Add(1)))
	args := []string{"run", "--nri-socket", c.NRISocket, "--containerd-address", c.Socket, "--log-file", logPath, "--audit", "json", "--metrics-address", "127.0.0.1:0"}
	if config != "" {
		args = append(args, "--config", config)
	}
	cmd := exec.Command(c.Tools.NRICsigd, append(args, extra...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	errFile, err := os.Create(logPath + ".stderr")
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&stderr, errFile), io.MultiWriter(&stderr, errFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		errFile.Close()
		return nil, err
	}
	d := &Daemon{LogPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		errFile.Close()
		if bytes.Contains(stderr.Bytes(), []byte("WARNING: DATA RACE")) {
			fmt.Fprintf(os.Stderr, "testbed: DATA RACE in nri-csig:\n%s\n", stderr.String())
		}
		if stderr.Len() > 0 {
			d.err = fmt.Errorf("%v: %s", d.err, stderr.String())
		}
		close(d.exited)
	}()
	return d, nil
}

// WaitRegistered waits until the daemon has synchronized with NRI n times in
// all (one per connection).
func (d *Daemon) WaitRegistered(n int, deadline time.Duration) error {
	return Poll(deadline, func() error {
		select {
		case <-d.exited:
			return Permanent(fmt.Errorf("nri-csig exited: %v\n%s", d.err, tail(d.LogPath, 20)))
		default:
		}
		if got := d.Count(`"msg":"synchronized with runtime"`); got < n {
			return fmt.Errorf("nri-csig synchronized %d times, want %d; log:\n%s", got, n, tail(d.LogPath, 10))
		}
		return nil
	})
}

// Count returns how many log lines contain s.
func (d *Daemon) Count(s string) int {
	b, _ := os.ReadFile(d.LogPath)
	return bytes.Count(b, []byte(s))
}

// Children returns the executables (/proc/PID/exe) and arguments of the
// daemon's child processes: nri-csigd runs nri-csig cert-verifier for
// certificate witnesses.
func (d *Daemon) Children() (map[int][]string, error) {
	pid := d.cmd.Process.Pid
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return nil, err
	}
	out := map[int][]string{}
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue // the thread ended
		}
		for _, f := range strings.Fields(string(b)) {
			var child int
			if _, err := fmt.Sscanf(f, "%d", &child); err != nil {
				continue
			}
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", child))
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
			out[child] = append([]string{exe}, strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")...)
		}
	}
	return out, nil
}

// Log returns the daemon's log.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// Kill kills the daemon with SIGKILL, as a crash would.
func (d *Daemon) Kill() {
	d.cmd.Process.Kill()
	<-d.exited
}

// Stop asks the daemon to stop (SIGTERM) and waits.
func (d *Daemon) Stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(10 * time.Second):
		d.Kill()
		return fmt.Errorf("nri-csig did not stop within 10s of SIGTERM")
	}
}

// Wait waits for the daemon to exit and returns its error and stderr.
func (d *Daemon) Wait(deadline time.Duration) error {
	select {
	case <-d.exited:
		return d.err
	case <-time.After(deadline):
		return fmt.Errorf("nri-csig still running after %s", deadline)
	}
}

// AuditRecords returns the daemon's audit records (JSON lines with
// "audit":true) whose fields include every key=value of match.
func (d *Daemon) AuditRecords(match map[string]string) []map[string]any {
	b, _ := os.ReadFile(d.LogPath)
	var out []map[string]any
	for _, line := range bytes.Split(b, []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || rec["audit"] != true {
			continue
		}
		ok := true
		for k, v := range match {
			if fmt.Sprint(rec[k]) != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, rec)
		}
	}
	return out
}

// RSSBytes returns the daemon's resident memory (VmRSS).
func (d *Daemon) RSSBytes() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if f := bytes.Fields(line); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			var kb int64
			fmt.Sscanf(string(f[1]), "%d", &kb)
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", d.cmd.Process.Pid)
}

// DecisionMillis returns the duration_ms of the daemon's "create" audit
// records for containers whose name starts with prefix, sorted.
func (d *Daemon) DecisionMillis(prefix string) []float64 {
	var ms []float64
	for _, r := range d.AuditRecords(map[string]string{"event": "create"}) {
		name, _ := r["container"].(string)
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(fmt.Sprint(r["duration_ms"]), "%g", &v); err == nil {
			ms = append(ms, v)
		}
	}
	sort.Float64s(ms)
	return ms
}

// Signal sends sig to the daemon.
func (d *Daemon) Signal(sig os.Signal) error { return d.cmd.Process.Signal(sig) }

// MetricsURL returns the base URL of the daemon's metrics server, from its log.
func (d *Daemon) MetricsURL() (string, error) {
	for _, line := range strings.Split(d.Log(), "\n") {
		var rec struct {
			Msg     string `json:"msg"`
			Address string `json:"address"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving /metrics and /readyz" {
			return "http://" + rec.Address, nil
		}
	}
	return "", fmt.Errorf("the daemon has not said where it serves metrics")
}
