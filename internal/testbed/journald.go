package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

const journalSocket = "/run/systemd/journal/socket"

// EnsureJournald makes sure systemd-journald listens on its socket, starting
// Debian's systemd-journald by hand on machines without systemd (CI, sandboxes).
// The returned function stops what it started.
func EnsureJournald() (stop func(), err error) {
	if journal.Enabled() {
		return func() {}, nil
	}
	os.RemoveAll("/run/systemd/journal") // a stale socket from a journald that died
	if err := ensureDebianPackages(map[string]string{"systemd": "/lib/systemd/systemd-journald"}); err != nil {
		return nil, err
	}
	cmd := exec.Command("/lib/systemd/systemd-journald")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting systemd-journald: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() {
		cmd.Process.Kill()
		<-exited
		// A socket nobody listens on would make clients believe journald is there.
		os.RemoveAll("/run/systemd/journal")
	}
	err = Poll(10*time.Second, func() error {
		if !journal.Enabled() {
			return fmt.Errorf("nobody listens on %s", journalSocket)
		}
		return nil
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("systemd-journald did not create %s: %w", journalSocket, err)
	}
	return stop, nil
}

// Journal returns journalctl's JSON output for the given matches (FIELD=value).
func Journal(matches ...string) (string, error) {
	out, err := exec.Command("journalctl", append([]string{"--no-pager", "-o", "json"}, matches...)...).Output()
	return string(out), err
}
