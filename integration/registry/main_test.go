//go:build integration

// Package registry runs the node daemon against private registries on a
// real containerd: a loopback registry serving TLS with a test CA and
// Docker distribution token authentication, and a mirror containerd pulls
// through (hosts.toml), with the daemon configured only by its node config
// (registries.configPath, registries.dockerConfig).
package registry

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/regtest"
	"github.com/nri-csig/nri-csig/internal/testbed"
)

const (
	user     = "ci-puller"
	password = "pull-secret-7f3a" // must never appear in logs or refusals
)

var (
	env        *testbed.Env
	daemon     *testbed.Daemon
	ca         *regtest.CA
	private    *regtest.Registry // TLS + token auth
	mirror     *regtest.Registry // TLS, for registry.invalid
	work       string
	certsDir   string // containerd's config_path, which the node config names too
	dockerCfg  string // the node config's registries.dockerConfig
	nodeConfig string
)

func TestMain(m *testing.M) { testbed.Main(m, "registry", run) }

func run(m *testing.M) (int, error) {
	var err error
	if env, err = testbed.Setup(true); err != nil {
		return 0, err
	}
	defer env.Close()
	if ca, err = regtest.NewCA("nri-csig integration CA"); err != nil {
		return 0, err
	}
	if private, err = regtest.Start(ca, regtest.Options{User: user, Password: password}); err != nil {
		return 0, err
	}
	defer private.Close()
	if mirror, err = regtest.Start(ca, regtest.Options{}); err != nil {
		return 0, err
	}
	defer mirror.Close()

	work = filepath.Join(env.Containerd.Dir, "registry-it")
	certsDir = filepath.Join(env.Containerd.Dir, "certs.d") // the testbed's config_path
	for _, d := range []string{work, filepath.Join(work, "docker")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
	}
	caFile := filepath.Join(work, "registry-ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		return 0, err
	}
	// containerd and the daemon read the same tree: the private registry
	// with its CA; registry.invalid through the mirror only.
	if err := writeHosts(private.Host, fmt.Sprintf("server = \"https://%s\"\nca = %q\n", private.Host, caFile)); err != nil {
		return 0, err
	}
	// The mirror itself, where its content is pushed and signed.
	if err := writeHosts(mirror.Host, fmt.Sprintf("server = \"https://%s\"\nca = %q\n", mirror.Host, caFile)); err != nil {
		return 0, err
	}
	if err := writeHosts("registry.invalid", fmt.Sprintf(`server = "https://registry.invalid"
[host."https://%s"]
  capabilities = ["pull", "resolve"]
  ca = %q
`, mirror.Host, caFile)); err != nil {
		return 0, err
	}
	dockerCfg = filepath.Join(work, "docker", "config.json")
	if err := os.WriteFile(dockerCfg, regtest.DockerConfig(private.Host, user, password), 0o600); err != nil {
		return 0, err
	}

	if _, err := cli("generate-key", "--output-key-prefix", filepath.Join(work, "ci")); err != nil {
		return 0, err
	}
	bundle := filepath.Join(work, "bundle.yaml")
	for _, s := range [][]string{
		{"witness", "create", "--name", "ci", "--key", filepath.Join(work, "ci.pub")},
		{"policy", "create", "--name", "ci-required", "--witness", "ci", "--cluster", "it", "--namespace", "signed", "--enabled"},
	} {
		if _, err := cli(append(s, "--bundle", bundle)...); err != nil {
			return 0, err
		}
	}
	nodeConfig = filepath.Join(work, "node.yaml")
	cfg := fmt.Sprintf(`apiVersion: nri-csig.io/v1alpha1
kind: NodeConfig
cluster: it
bundle:
  file: %s
  interval: 1s
stateDir: %s
registries:
  configPath: %s
  dockerConfig: %s
`, bundle, filepath.Join(work, "state"), certsDir, dockerCfg)
	if err := os.WriteFile(nodeConfig, []byte(cfg), 0o644); err != nil {
		return 0, err
	}
	if daemon, err = env.Containerd.StartDaemon(nodeConfig); err != nil {
		return 0, err
	}
	return daemon.RunTests(m, 40), nil
}

// writeHosts writes certs.d/<host dir>/hosts.toml as containerd names it
// (host:port as host_port_).
func writeHosts(host, toml string) error {
	dir := filepath.Join(certsDir, strings.Replace(host, ":", "_", 1))
	if strings.Contains(host, ":") {
		dir += "_"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644)
}

// cli runs the nri-csig binary with an empty DOCKER_CONFIG, so that only
// the credentials a test gives count.
func cli(args ...string) (string, error) {
	return cliIn(filepath.Join(work, "no-docker-config"), args...)
}

// cliIn runs the nri-csig binary with DOCKER_CONFIG=dockerDir.
func cliIn(dockerDir string, args ...string) (string, error) {
	return testbed.RunCLI(env.Tools.NRICsig, []string{"DOCKER_CONFIG=" + dockerDir}, args...)
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cli(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// push uploads a distinct busybox image to reg as repoTag (with the
// registry's credentials when it has any) and returns its digest.
func push(t *testing.T, reg *regtest.Registry, repoTag, marker string, auth bool) string {
	t.Helper()
	img, err := testbed.BusyboxImage(env.Tools.Busybox, marker)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}})}
	if auth {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: user, Password: password}))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// pull pulls ref through the CRI (containerd reads certs.d), with
// credentials when creds is set, and returns the image.
func pull(t *testing.T, ref, digest string, creds bool) testbed.Image {
	t.Helper()
	args := []string{"pull"}
	if creds {
		args = append(args, "--creds", user+":"+password)
	}
	out, err := env.Containerd.Crictl(append(args, ref)...)
	if err != nil {
		t.Fatalf("containerd could not pull %s through %s: %v", ref, certsDir, err)
	}
	return testbed.Image{Ref: ref, Digest: digest, ConfigDigest: strings.TrimPrefix(out, "Image is up to date for ")}
}

func mustRun(t *testing.T, pod *testbed.Pod, name string, img testbed.Image) {
	t.Helper()
	if _, err := pod.Run(testbed.ContainerSpec{Name: name, Image: img.Ref}); err != nil {
		t.Fatalf("container %q from %s was refused: %v", name, img.Ref, err)
	}
}

// mustRefuse creates a container that must be refused, and returns the
// refusal.
func mustRefuse(t *testing.T, pod *testbed.Pod, name string, img testbed.Image) string {
	t.Helper()
	_, err := pod.Create(testbed.ContainerSpec{Name: name, Image: img.Ref})
	if err == nil {
		t.Fatalf("container %q from %s was created; want it refused", name, img.Ref)
	}
	msg := strings.ReplaceAll(err.Error(), `\"`, `"`)
	if !strings.Contains(msg, "nri-csig: refused container") {
		t.Fatalf("container %q from %s failed, but not by nri-csig's refusal: %s", name, img.Ref, msg)
	}
	return msg
}
