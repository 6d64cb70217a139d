//go:build integration

// Package credentials runs the node daemon against private loopback
// registries on a real containerd, with the credentials a node has: a
// kubelet credential provider plugin (integration/credentials/testcredplugin)
// and "nri-csig acr-credential-provider" against the loopback ACR fake,
// both configured in one kubelet CredentialProviderConfig that the node
// config points at (registries.credentialProviders).
package credentials

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/pkg/acrcred/acrfake"
)

const (
	pusher, pushPassword = "pusher", "push-password"
	pluginUser           = "ci-puller"
	pluginPassword       = "plugin-password-never-logged"
	namespace            = "private"
)

var (
	env        *testbed.Env
	daemon     *testbed.Daemon
	work       string
	private    *testbed.Registry // basic auth: the pusher, and the plugin's user
	acr        *testbed.Registry // logins the ACR fake issued, and the pusher
	broken     *testbed.Registry // basic auth; its provider's plugin fails
	acrAPI     *acrfake.Server
	acrReads   atomic.Int64 // registry requests served with an ACR-issued login
	pluginRuns string       // one line per run of the test plugin
	cliEnv     []string
)

func TestMain(m *testing.M) { testbed.Main(m, "credentials", run) }

func run(m *testing.M) (int, error) {
	var err error
	if env, err = testbed.Setup(true); err != nil {
		return 0, err
	}
	defer env.Close()
	work = filepath.Join(env.Containerd.Dir, "credentials")
	bin := filepath.Join(work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return 0, err
	}

	// The registries, and what the test itself pushes and signs with.
	if private, err = testbed.StartRegistryWith(testbed.BasicAuth(map[string]string{pusher: pushPassword, pluginUser: pluginPassword})); err != nil {
		return 0, err
	}
	defer private.Close()
	acrAPI = acrfake.New()
	defer acrAPI.Close()
	if acr, err = testbed.StartRegistryWith(func(h http.Handler) http.Handler { return acrAPI.Registry(h, pusher, pushPassword, &acrReads) }); err != nil {
		return 0, err
	}
	defer acr.Close()
	if broken, err = testbed.StartRegistryWith(testbed.BasicAuth(map[string]string{pusher: pushPassword, pluginUser: pluginPassword})); err != nil {
		return 0, err
	}
	defer broken.Close()
	for _, r := range []*testbed.Registry{private, acr, broken} {
		if err := env.Containerd.AllowHTTPRegistry(r.Host); err != nil {
			return 0, err
		}
	}
	dockerDir := filepath.Join(work, "docker")
	auth := base64.StdEncoding.EncodeToString([]byte(pusher + ":" + pushPassword))
	if err := writeJSON(filepath.Join(dockerDir, "config.json"), map[string]any{"auths": map[string]any{
		private.Host: map[string]string{"auth": auth}, acr.Host: map[string]string{"auth": auth}, broken.Host: map[string]string{"auth": auth}}}); err != nil {
		return 0, err
	}
	cliEnv = []string{"DOCKER_CONFIG=" + dockerDir} // the CLI's only: the daemon reads no Docker config

	// The plugins: the test plugin, and nri-csig-cli (the smallest binary
	// with acr-credential-provider) for ACR, linked under the provider's name.
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "test-cred"), "./testcredplugin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build testcredplugin: %v\n%s", err, out)
	}
	if err := os.Link(filepath.Join(bin, "test-cred"), filepath.Join(bin, "broken-cred")); err != nil {
		return 0, err
	}
	lite, err := env.Tools.BuildCLI()
	if err != nil {
		return 0, err
	}
	if err := os.Symlink(lite, filepath.Join(bin, "nri-csig")); err != nil {
		return 0, err
	}
	pluginRuns = filepath.Join(work, "test-cred.runs")
	pw := filepath.Join(work, "test-cred.password")
	if err := os.WriteFile(pw, []byte(pluginPassword+"\n"), 0o600); err != nil {
		return 0, err
	}
	providers := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: test-cred
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    matchImages: [%q]
    defaultCacheDuration: 1m
    args: [--runs, %s, --username, %s, --password-file, %s, --cache-key-type, Registry, --cache-duration, 1h]
  - name: nri-csig
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    matchImages: [%q]
    defaultCacheDuration: 1m
    args: [acr-credential-provider, --instance-id, %s, --region, %s, --endpoint, "http://%s"]
    env:
      - {name: ALIBABA_CLOUD_CREDENTIALS_URI, value: %q}
      - {name: ALIBABA_CLOUD_ECS_METADATA_DISABLED, value: "true"}
      - {name: ALIBABA_CLOUD_CLI_PROFILE_DISABLED, value: "true"}
  - name: broken-cred
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    matchImages: [%q]
    defaultCacheDuration: 1m
    args: [--fail]
`, private.Host, pluginRuns, pluginUser, pw, acr.Host, acrfake.InstanceID, acrfake.Region, acrAPI.Endpoint, acrAPI.CredentialsURL(), broken.Host)
	providersFile := filepath.Join(work, "credential-providers.yaml")
	if err := os.WriteFile(providersFile, []byte(providers), 0o644); err != nil {
		return 0, err
	}

	// A bundle: images in namespace "private" need the ci witness.
	if _, err := cli("generate-key", "--output-key-prefix", filepath.Join(work, "ci")); err != nil {
		return 0, err
	}
	if _, err := cli("generate-key", "--output-key-prefix", filepath.Join(work, "bundle")); err != nil {
		return 0, err
	}
	bundle := filepath.Join(work, "bundle.yaml")
	for _, s := range [][]string{
		{"witness", "create", "--name", "ci", "--key", filepath.Join(work, "ci.pub")},
		{"policy", "create", "--name", "private-ci", "--witness", "ci", "--cluster", "it", "--namespace", namespace, "--enabled"},
	} {
		if _, err := cli(append(s, "--bundle", bundle)...); err != nil {
			return 0, err
		}
	}
	if _, err := cli("bundle", "sign", "--key", filepath.Join(work, "bundle.key"), "--bundle", bundle); err != nil {
		return 0, err
	}
	nodeConfig := filepath.Join(work, "node.yaml")
	cfg := fmt.Sprintf(`apiVersion: nri-csig.io/v1alpha1
kind: NodeConfig
cluster: it
bundle:
  file: %s
  signingKey: %s
stateDir: %s
registries:
  credentialProviders:
    config: %s
    binDir: %s
`, bundle, filepath.Join(work, "bundle.pub"), filepath.Join(work, "state"), providersFile, bin)
	if err := os.WriteFile(nodeConfig, []byte(cfg), 0o644); err != nil {
		return 0, err
	}
	if daemon, err = env.Containerd.StartDaemon(nodeConfig); err != nil {
		return 0, err
	}
	return daemon.RunTests(m, 40), nil
}

// cli runs the nri-csig binary with the pusher's Docker config.
func cli(args ...string) (string, error) {
	return testbed.RunCLI(env.Tools.NRICsig, cliEnv, args...)
}

// newImage pushes a distinct image to reg as the pusher, signs it with the
// ci key when signed, and pulls it into containerd with the pusher's login.
func newImage(t *testing.T, reg *testbed.Registry, repoTag, marker string, signed bool) testbed.Image {
	t.Helper()
	img, err := testbed.BusyboxImage(env.Tools.Busybox, marker)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := reg.PushAs(repoTag, img, &authn.Basic{Username: pusher, Password: pushPassword})
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref(repoTag)
	if signed {
		if out, err := cli("sign", "--key", filepath.Join(work, "ci.key"), ref); err != nil || !strings.Contains(out, digest) {
			t.Fatalf("signing %s: %v\n%s", ref, err, out)
		}
	}
	config, err := env.Containerd.PullAs(ref, pusher, pushPassword)
	if err != nil {
		t.Fatal(err)
	}
	return testbed.Image{Ref: ref, Digest: digest, ConfigDigest: config}
}

func mustRun(t *testing.T, pod *testbed.Pod, name string, img testbed.Image) {
	t.Helper()
	if _, err := pod.Run(testbed.ContainerSpec{Name: name, Image: img.Ref}); err != nil {
		t.Fatalf("container %q from %s was refused: %v\n%s", name, img.Ref, err, testbed.LastLines(daemon.Log(), 20))
	}
}

// mustRefuseUnsigned checks the refusal is the policy's (no signature),
// not a registry that refused access.
func mustRefuseUnsigned(t *testing.T, pod *testbed.Pod, name string, img testbed.Image) {
	t.Helper()
	_, err := pod.Create(testbed.ContainerSpec{Name: name, Image: img.Ref})
	if err == nil {
		t.Fatalf("container %q from %s was created; want it refused", name, img.Ref)
	}
	msg := strings.ReplaceAll(err.Error(), `\"`, `"`)
	if !strings.Contains(msg, "nri-csig: refused container") || !strings.Contains(msg, `policy "private-ci"`) || !strings.Contains(msg, "no signatures found") {
		t.Errorf("refusal = %s; want nri-csig's, naming policy private-ci and no signatures found", msg)
	}
	for _, bad := range []string{"UNAUTHORIZED", "status 401", "refused access", "credential provider"} {
		if strings.Contains(msg, bad) {
			t.Errorf("refusal mentions %q; want a missing signature, not an access failure:\n%s", bad, msg)
		}
	}
}

func runsOfPlugin(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(pluginRuns)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
