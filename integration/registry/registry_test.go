//go:build integration

package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/regtest"
	"github.com/nri-csig/nri-csig/internal/testbed"
)

// A private registry over TLS (a test CA, from hosts.toml) behind token
// authentication: containerd pulls with credentials, the daemon reads the
// signatures with the node config's docker config and the same hosts.toml,
// admits the signed image and refuses the unsigned one as unsigned.
func TestPrivateTLSRegistryWithTokenAuth(t *testing.T) {
	signed := push(t, private, "team/app:signed", "private-signed", true)
	unsigned := push(t, private, "team/app:unsigned", "private-unsigned", true)
	// The CLI reaches it as the node does: the same tree and credentials.
	out := mustCLI(t, "sign", "--key", filepath.Join(work, "ci.key"), "--node-config", nodeConfig, private.Host+"/team/app:signed")
	if !strings.Contains(out, signed) {
		t.Fatalf("nri-csig sign did not say it signed %s:\n%s", signed, out)
	}
	out = mustCLI(t, "verify", "--key", filepath.Join(work, "ci.pub"), "--registry-config-path", certsDir, "--docker-config", dockerCfg, private.Host+"/team/app:signed")
	if !strings.Contains(out, signed) {
		t.Fatalf("nri-csig verify:\n%s", out)
	}
	// As cosign and crane: $DOCKER_CONFIG/config.json, without any flag for it.
	if out, err := cliIn(filepath.Dir(dockerCfg), "verify", "--key", filepath.Join(work, "ci.pub"), "--registry-config-path", certsDir, private.Host+"/team/app:signed"); err != nil || !strings.Contains(out, signed) {
		t.Fatalf("nri-csig verify with DOCKER_CONFIG: %v\n%s", err, out)
	}
	if out, err := cli("verify", "--key", filepath.Join(work, "ci.pub"), "--registry-config-path", certsDir, private.Host+"/team/app:signed"); err == nil || !strings.Contains(out, "refused access (401) with no credentials") {
		t.Fatalf("nri-csig verify without credentials: %v\n%s\nwant the registry's refusal, naming the sources asked", err, out)
	}
	tokens := private.Tokens.Load()

	good := pull(t, private.Host+"/team/app:signed", signed, true)
	bad := pull(t, private.Host+"/team/app:unsigned", unsigned, true)
	pod := env.Containerd.NewPod(t, "signed")
	mustRun(t, pod, "signed-private", good)
	msg := mustRefuse(t, pod, "unsigned-private", bad)
	if !strings.Contains(msg, "sign the image digest") || strings.Contains(msg, "refused access") || strings.Contains(msg, "could not be read") {
		t.Errorf("refusal of the unsigned image: %s\nwant a missing signature, not a registry failure", msg)
	}
	if private.Tokens.Load() == tokens {
		t.Errorf("the token server issued no token to the daemon; it did not authenticate")
	}

	// Without credentials (the docker config emptied; a new repository is
	// a new handshake), the refusal says the registry refused access, names
	// the credential source, and is not "not signed".
	t.Run("without credentials", func(t *testing.T) {
		d := push(t, private, "team/other:1", "private-no-creds", true)
		mustCLI(t, "sign", "--key", filepath.Join(work, "ci.key"), "--node-config", nodeConfig, private.Host+"/team/other:1")
		if err := os.WriteFile(dockerCfg, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(dockerCfg, regtest.DockerConfig(private.Host, user, password), 0o600) })
		// The daemon looks at the file again at most once a second.
		time.Sleep(1100 * time.Millisecond)
		img := pull(t, private.Host+"/team/other:1", d, true)
		pod := env.Containerd.NewPod(t, "signed")
		var msg string
		err := testbed.Poll(20*time.Second, func() error {
			msg = mustRefuse(t, pod, "no-creds", img)
			if !strings.Contains(msg, "refused access (401)") {
				return fmt.Errorf("refusal: %s", msg)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"registry " + private.Host + " refused access (401) with no credentials (asked: docker config " + dockerCfg, "could not be read"} {
			if !strings.Contains(msg, want) {
				t.Errorf("refusal does not say %q:\n%s", want, msg)
			}
		}
		if strings.Contains(msg, "sign the image digest") {
			t.Errorf("refusal tells to sign an image whose signatures could not be read:\n%s", msg)
		}
	})

	if log := daemon.Log(); !strings.Contains(log, `"msg":"registries","component":"nri-csig","config_path":"`+certsDir+`","credential_sources":"docker config `+dockerCfg) {
		t.Errorf("the daemon did not log its registry settings at start:\n%s", testbed.LastLines(log, 40))
	}
	if strings.Contains(daemon.Log(), password) {
		t.Errorf("the daemon's log holds the registry password")
	}
	for _, rec := range daemon.AuditRecords(map[string]string{}) {
		if b, _ := json.Marshal(rec); strings.Contains(string(b), password) {
			t.Errorf("an audit record holds the registry password: %v", rec)
		}
	}
}

// containerd pulls registry.invalid/app:1 through a hosts.toml mirror on
// loopback (the upstream name never resolves); the daemon finds the
// image's signatures through the same mirror and admits it.
func TestSignaturesThroughMirror(t *testing.T) {
	d := push(t, mirror, "app:1", "mirrored", false)
	// Signed where the mirror serves from (signatures copied to the mirror).
	mustCLI(t, "sign", "--key", filepath.Join(work, "ci.key"), "--registry-config-path", certsDir, mirror.Host+"/app:1")
	// The CLI reads through the mirror as the node does.
	out := mustCLI(t, "verify", "--key", filepath.Join(work, "ci.pub"), "--node-config", nodeConfig, "registry.invalid/app:1")
	if !strings.Contains(out, d) {
		t.Fatalf("nri-csig verify registry.invalid/app:1:\n%s", out)
	}
	before := len(mirror.Requests())
	img := pull(t, "registry.invalid/app:1", d, false)
	pod := env.Containerd.NewPod(t, "signed")
	mustRun(t, pod, "mirrored", img)
	sigTag := "GET /v2/app/manifests/sha256-" + strings.TrimPrefix(d, "sha256:") + ".sig ns=registry.invalid"
	got := mirror.Requests()[before:]
	if !slices.Contains(got, sigTag) {
		t.Errorf("the mirror was not asked for the signature tag with ns=registry.invalid (%q); it got %v", sigTag, got)
	}
	t.Logf("the mirror answered %d requests for the pull and the daemon's discovery: %v", len(got), got)

	// An unsigned image through the mirror is refused.
	u := push(t, mirror, "app:2", "mirrored-unsigned", false)
	mustRefuse(t, pod, "mirrored-unsigned", pull(t, "registry.invalid/app:2", u, false))
}

// The daemon under the unit's sandbox, approximated as
// integration/bootstrap_test.go does (no systemd runs as PID 1 here, so
// systemd-run cannot apply the unit's properties): the root file system
// read-only but the state folder (ProtectSystem=strict, ProtectHome=
// read-only, StateDirectory=), no capabilities, no new privileges. It
// reads hosts.toml, the CA file and the 0600 docker config, and admits a
// signed image of the private registry.
func TestPrivateRegistryUnderUnitSandbox(t *testing.T) {
	if err := daemon.Stop(); err != nil {
		t.Logf("stopping the shared daemon: %v", err)
	}
	t.Cleanup(func() {
		var err error
		if daemon, err = env.Containerd.StartDaemon(nodeConfig); err != nil {
			t.Fatalf("restarting the shared daemon: %v", err)
		}
	})
	state := filepath.Join(work, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(state, "sandboxed.log")
	sandbox := filepath.Join(t.TempDir(), "sandbox.sh")
	os.WriteFile(sandbox, []byte(`set -e
w=$1; shift
mount --make-rprivate /
mount --bind "$w" "$w"
mount -o bind,remount,ro /
exec setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"
`), 0o755)
	argv := []string{"unshare", "--mount", "--", "sh", sandbox, state, env.Tools.NRICsigd, "run", "--config", nodeConfig,
		"--nri-socket", env.Containerd.NRISocket, "--containerd-address", env.Containerd.Socket, "--log-file", logPath, "--audit", "json"}
	cmd := exec.Command(argv[0], argv[1:]...)
	// The unit's Environment=DOCKER_CONFIG (a folder without config.json here).
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(work, "unit-docker"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	err := testbed.Poll(20*time.Second, func() error {
		select {
		case err := <-exited:
			return testbed.Permanent(fmt.Errorf("the sandboxed daemon exited: %v\n%s", err, stderr.String()))
		default:
		}
		if b, _ := os.ReadFile(logPath); !bytes.Contains(b, []byte(`"msg":"synchronized with runtime"`)) {
			return fmt.Errorf("not registered yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	for _, want := range []string{"CapEff:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("the daemon is not sandboxed (%q missing):\n%s", want, status)
		}
	}

	d := push(t, private, "team/sandboxed:1", "private-sandboxed", true)
	mustCLI(t, "sign", "--key", filepath.Join(work, "ci.key"), "--node-config", nodeConfig, private.Host+"/team/sandboxed:1")
	img := pull(t, private.Host+"/team/sandboxed:1", d, true)
	mustRun(t, env.Containerd.NewPod(t, "signed"), "sandboxed", img)
	if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(password)) {
		t.Errorf("the sandboxed daemon's log holds the registry password")
	}
}
