//go:build integration

// Package notation runs the node daemon on a real containerd with a bundle
// whose witness is of kind x509, against images signed by the real notation
// CLI (v1.3.2, built into the tool cache) on a loopback OCI registry, with
// the referrers API on and off.
package notation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/internal/x509test"
)

// noReferrersPrefix: repositories under it are served as by a registry
// without the OCI 1.1 referrers API (it answers 404), so that signatures
// are found through the sha256-<hex> referrers tag.
const noReferrersPrefix = "noref/"

// namespace is the one a policy requires the x509 witness in.
const namespace = "notation"

// identity is the trusted identity of the witness; signer is a subject
// that matches it.
const identity = "x509.subject: C=CN, ST=Zhejiang, O=Example, CN=release"

var (
	tools    *testbed.Tools
	ctrd     *testbed.Containerd
	daemon   *testbed.Daemon
	host     string // the registry, 127.0.0.1:port
	notation string // the notation CLI
	work     string
	ca       *x509test.CA // the witness's trust store
)

func TestMain(m *testing.M) { testbed.Main(m, "notation", run) }

func run(m *testing.M) (int, error) {
	var err error
	start := time.Now()
	if notation, err = testbed.EnsureNotation(); err != nil {
		return 0, err
	}
	if tools, err = testbed.EnsureTools(); err != nil {
		return 0, err
	}
	stop, err := startRegistry()
	if err != nil {
		return 0, err
	}
	defer stop()
	pause, err := testbed.PauseImage(tools.Pause)
	if err != nil {
		return 0, err
	}
	pauseRef := host + "/csig/pause:1"
	if _, err := write(pauseRef, pause); err != nil {
		return 0, err
	}
	if ctrd, err = testbed.StartContainerd(tools, testbed.ContainerdOptions{
		RegistryHost: host, SandboxImage: pauseRef, RequiredPlugins: []string{testbed.PluginName},
	}); err != nil {
		return 0, err
	}
	defer ctrd.Close()
	if _, err := ctrd.Pull(pauseRef); err != nil {
		return 0, err
	}
	work = filepath.Join(ctrd.Dir, "notation")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return 0, err
	}
	ca = x509test.NewCA(x509test.Must, "release CA")
	caFile := filepath.Join(work, "release-ca.pem")
	if err := os.WriteFile(caFile, x509test.PEM(ca.Cert), 0o644); err != nil {
		return 0, err
	}
	bundle := filepath.Join(work, "bundle.yaml")
	for _, args := range [][]string{
		{"generate-key", "--output-key-prefix", filepath.Join(work, "bundle-signing")},
		{"witness", "create", "--name", "notary", "--kind", "x509", "--ca", caFile, "--trusted-identity", identity,
			"--description", "release pipeline, Notary Project signatures", "--bundle", bundle},
		{"policy", "create", "--name", "notary-required", "--witness", "notary", "--cluster", "it", "--namespace", namespace, "--enabled", "--bundle", bundle},
		{"bundle", "sign", "--key", filepath.Join(work, "bundle-signing.key"), "--bundle", bundle},
	} {
		if out, err := cli(args...); err != nil {
			return 0, fmt.Errorf("%v\n%s", err, out)
		}
	}
	nodeConfig := filepath.Join(work, "node.yaml")
	if err := os.WriteFile(nodeConfig, []byte(fmt.Sprintf(`apiVersion: nri-csig.io/v1alpha1
kind: NodeConfig
cluster: it
bundle:
  file: %s
  interval: 1s
  signingKey: %s
stateDir: %s
`, bundle, filepath.Join(work, "bundle-signing.pub"), filepath.Join(work, "state"))), 0o644); err != nil {
		return 0, err
	}
	if daemon, err = ctrd.StartDaemon(nodeConfig); err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "notation testbed ready in %s (registry %s, containerd %s)\n", time.Since(start).Round(time.Millisecond), host, ctrd.Dir)
	code := m.Run()
	daemon.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "daemon log tail:\n%s\ncontainerd log tail:\n%s\n", testbed.LastLines(daemon.Log(), 30), ctrd.LogTail(20))
	}
	return code, nil
}

// startRegistry serves go-containerregistry's registry with the referrers
// API, as an OCI 1.1 registry does: it answers a manifest with a subject
// with the OCI-Subject header (which go-containerregistry omits; without it
// notation falls back to the referrers tag). Repositories under
// noReferrersPrefix have no referrers API.
func startRegistry() (stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host = ln.Addr().String()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noReferrers := strings.HasPrefix(r.URL.Path, "/v2/"+noReferrersPrefix)
		switch {
		case noReferrers && strings.Contains(r.URL.Path, "/referrers/"):
			http.NotFound(w, r) // as a registry that does not route the API

			return
		case !noReferrers && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/"):
			body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var m struct {
				Subject *struct {
					Digest string `json:"digest"`
				} `json:"subject"`
			}
			if json.Unmarshal(body, &m) == nil && m.Subject != nil {
				w.Header().Set("OCI-Subject", m.Subject.Digest)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		reg.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}

// write pushes img as ref and returns its digest.
func write(ref string, img v1.Image) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img); err != nil {
		return "", err
	}
	d, err := img.Digest()
	return d.String(), err
}

// cli runs this work tree's nri-csig binary.
func cli(args ...string) (string, error) {
	return command(nil, tools.NRICsig, args...)
}

// command runs bin with args and extra environment, with a deadline.
func command(env []string, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return out.String(), nil
}
