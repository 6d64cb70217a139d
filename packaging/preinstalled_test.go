package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The recommended mode's drop-in turns external NRI connections off, so no
// process can register as nri-csig (integration/squat_test.go proves it on
// containerd), and the wrapper records its PID for reload and the check.
func TestPreInstalledShutsOutExternalPlugins(t *testing.T) {
	if body := uncommented(t, "containerd/preinstalled/50-nri-csig.toml"); !strings.Contains(body, "disable_connections = true") {
		t.Errorf("the pre-installed drop-in does not set disable_connections = true:\n%s", body)
	}
	if body := uncommented(t, "nri/50-nri-csig"); !strings.Contains(body, "echo $$ > /run/nri-csig/preinstalled.pid\nexec ") {
		t.Errorf("the wrapper does not record its PID right before exec:\n%s", body)
	}
	u := unitFile(t, "../systemd/nri-csig-reload.service")
	if got := u["Service.ExecStart"]; len(got) != 2 || got[1] != "/usr/share/nri-csig/preinstalled/reload.sh" {
		t.Errorf("nri-csig-reload.service ExecStart = %q; want the pre-installed reload too", got)
	}
	if got := unitFile(t, "../systemd/nri-csig-preinstalled-check.service")["Service.ExecStart"]; len(got) != 1 || got[0] != "/usr/share/nri-csig/preinstalled/check.sh" {
		t.Errorf("nri-csig-preinstalled-check.service ExecStart = %q", got)
	}
	// The guard resolves host symlinks in the daemon's view: it must be the host's.
	svc := unitFile(t, "../systemd/nri-csig.service")
	if v := svc["Service.PrivateTmp"]; len(v) > 0 && v[0] != "no" {
		t.Errorf("nri-csig.service PrivateTmp=%q: the daemon would not see the host's /tmp", v)
	}
	if v := svc["Service.ProtectHome"]; len(v) != 1 || v[0] != "read-only" {
		t.Errorf("nri-csig.service ProtectHome=%q, want read-only", v)
	}
}

func fakeSystemctl(t *testing.T, script string) (path, calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	path = filepath.Join(dir, "systemctl")
	os.WriteFile(path, []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\n"+script), 0o755)
	return path, calls
}

func readCalls(calls string) string {
	b, _ := os.ReadFile(calls)
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "|")
}

// mode.sh preinstalled installs what the recommended mode needs where
// containerd reads it, and mode.sh external takes it away again.
func TestModeScript(t *testing.T) {
	root := t.TempDir()
	share := filepath.Join(root, "usr/share/nri-csig/preinstalled")
	os.MkdirAll(share, 0o755)
	for src, dst := range map[string]string{"nri/50-nri-csig": "50-nri-csig", "nri/50-nri-csig.conf": "50-nri-csig.conf", "containerd/preinstalled/50-nri-csig.toml": "containerd-50-nri-csig.toml"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(share, dst), b, 0o644)
	}
	systemctl, calls := fakeSystemctl(t, "")
	run := func(mode string) string {
		t.Helper()
		cmd := exec.Command("sh", "nri/mode.sh", mode)
		cmd.Env = append(os.Environ(), "NRI_CSIG_ROOT="+root, "NRI_CSIG_TEST_SYSTEMCTL="+systemctl)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mode.sh %s: %v\n%s", mode, err, out)
		}
		return string(out)
	}
	out := run("preinstalled")
	if !strings.Contains(out, "systemctl restart containerd") {
		t.Errorf("mode.sh preinstalled does not say containerd must restart:\n%s", out)
	}
	for path, mode := range map[string]os.FileMode{
		"opt/nri/plugins/50-nri-csig":                         0o755,
		"etc/nri/conf.d/50-nri-csig.conf":                     0o644,
		"etc/containerd/conf.d/51-nri-csig-preinstalled.toml": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil || fi.Mode() != mode {
			t.Errorf("/%s after mode.sh preinstalled: %v %v, want mode %v", path, fi, err, mode)
		}
	}
	if got, want := readCalls(calls), "disable --now nri-csig.service|enable --now nri-csig-preinstalled-check.timer"; got != want {
		t.Errorf("mode.sh preinstalled called systemctl %q, want %q", got, want)
	}
	run("preinstalled") // again: idempotent, replaces the files by rename
	os.Remove(calls)
	run("external")
	for _, path := range []string{"opt/nri/plugins/50-nri-csig", "etc/nri/conf.d/50-nri-csig.conf", "etc/containerd/conf.d/51-nri-csig-preinstalled.toml"} {
		if _, err := os.Stat(filepath.Join(root, path)); err == nil {
			t.Errorf("/%s is still there after mode.sh external", path)
		}
	}
	if got, want := readCalls(calls), "disable --now nri-csig-preinstalled-check.timer|enable --now nri-csig.service"; got != want {
		t.Errorf("mode.sh external called systemctl %q, want %q", got, want)
	}
}

// check.sh restarts containerd when the pre-installed daemon is gone or a
// zombie, at most once a minute, and leaves a live one alone.
func TestCheckScript(t *testing.T) {
	for name, tc := range map[string]struct {
		comm, stat string // of the recorded PID; "" = no such process
		active     bool   // containerd
		want       string
	}{
		"alive":           {"nri-csigd", "42 (nri-csigd) S 1", true, "is-active --quiet containerd.service"},
		"alive, older":    {"nri-csig", "42 (nri-csig) S 1", true, "is-active --quiet containerd.service"},
		"dead":            {"", "", true, "is-active --quiet containerd.service|restart containerd.service"},
		"zombie":          {"nri-csigd", "42 (nri-csigd) Z 1", true, "is-active --quiet containerd.service|restart containerd.service"},
		"pid reused":      {"bash", "42 (bash) S 1", true, "is-active --quiet containerd.service|restart containerd.service"},
		"containerd down": {"", "", false, "is-active --quiet containerd.service"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			proc := filepath.Join(dir, "proc")
			if tc.comm != "" {
				os.MkdirAll(filepath.Join(proc, "42"), 0o755)
				os.WriteFile(filepath.Join(proc, "42", "comm"), []byte(tc.comm+"\n"), 0o644)
				os.WriteFile(filepath.Join(proc, "42", "stat"), []byte(tc.stat+"\n"), 0o644)
			}
			pidfile := filepath.Join(dir, "run", "preinstalled.pid")
			os.MkdirAll(filepath.Dir(pidfile), 0o755)
			os.WriteFile(pidfile, []byte("42\n"), 0o644)
			active := "exit 0"
			if !tc.active {
				active = `[ "$1" = is-active ] && exit 3`
			}
			systemctl, calls := fakeSystemctl(t, active+"\n")
			check := func() (string, error) {
				cmd := exec.Command("sh", "nri/check.sh")
				cmd.Env = append(os.Environ(), "NRI_CSIG_PIDFILE="+pidfile, "NRI_CSIG_TEST_PROC="+proc, "NRI_CSIG_TEST_SYSTEMCTL="+systemctl)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			out, _ := check()
			if got := readCalls(calls); got != tc.want {
				t.Fatalf("check.sh called systemctl %q, want %q\n%s", got, tc.want, out)
			}
			if !strings.HasSuffix(tc.want, "restart containerd.service") {
				return
			}
			os.Remove(calls)
			out, err := check()
			if got := readCalls(calls); got != "is-active --quiet containerd.service" || err == nil || !strings.Contains(out, "less than a minute ago") {
				t.Errorf("second check within a minute: systemctl %q, %v\n%s; want no restart and a failure", got, err, out)
			}
		})
	}
}

// reload.sh sends SIGHUP to the recorded process only if it is nri-csigd
// (or nri-csig, which older packages ran).
func TestReloadScript(t *testing.T) {
	// A test run under nohup ignores SIGHUP, and its children would inherit
	// that; with a handler here they start with the default (exec resets
	// caught signals, not ignored ones).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	defer signal.Reset(syscall.SIGHUP)
	dir := t.TempDir()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(sleep)
	fake := filepath.Join(dir, "nri-csigd") // its comm is "nri-csigd"
	os.WriteFile(fake, b, 0o755)
	older := filepath.Join(dir, "nri-csig")
	os.WriteFile(older, b, 0o755)
	for _, tc := range []struct {
		bin  string
		want syscall.Signal
	}{{fake, syscall.SIGHUP}, {older, syscall.SIGHUP}, {sleep, syscall.SIGTERM}} {
		cmd := exec.Command(tc.bin, "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		pidfile := filepath.Join(dir, "preinstalled.pid")
		os.WriteFile(pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644)
		deadline := time.Now().Add(5 * time.Second)
		for { // comm is set once the child has exec'd
			c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if strings.TrimSpace(string(c)) == filepath.Base(tc.bin) || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		rc := exec.Command("sh", "nri/reload.sh")
		rc.Env = append(os.Environ(), "NRI_CSIG_PIDFILE="+pidfile)
		if out, err := rc.CombinedOutput(); err != nil {
			t.Fatalf("reload.sh: %v\n%s", err, out)
		}
		// A pending SIGHUP is delivered before this SIGTERM (lower number first).
		cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.Sys().(syscall.WaitStatus).Signal() != tc.want {
			t.Errorf("%s after reload.sh: %v, want killed by %v", filepath.Base(tc.bin), err, tc.want)
		}
	}
}

// Removing the package also removes what mode.sh preinstalled copied, so that
// containerd does not keep launching a wrapper whose binary is gone.
func TestPreRemoveTakesPreInstalledCopies(t *testing.T) {
	root := t.TempDir()
	files := []string{"opt/nri/plugins/50-nri-csig", "etc/nri/conf.d/50-nri-csig.conf", "etc/containerd/conf.d/51-nri-csig-preinstalled.toml"}
	for _, f := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755)
		os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644)
	}
	keep := filepath.Join(root, "etc/containerd/conf.d/60-local.toml")
	os.WriteFile(keep, nil, 0o644)
	for _, args := range [][]string{{"upgrade", "0.2.0"}, {"remove"}} {
		cmd := exec.Command("sh", append([]string{"scripts/preremove.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "DPKG_ROOT="+root)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("preremove %v: %v\n%s", args, err, out)
		}
		for _, f := range files {
			_, err := os.Stat(filepath.Join(root, f))
			if gone := err != nil; gone != (args[0] == "remove") {
				t.Errorf("preremove %v: /%s gone = %v", args, f, gone)
			}
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("preremove removed an unrelated drop-in: %v", err)
	}
}
