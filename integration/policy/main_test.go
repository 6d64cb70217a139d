//go:build integration

// Package policy runs the node daemon with a signed-image policy bundle on a
// real containerd: witnesses, security policies, signatures made with local
// keys and through the Alibaba Cloud KMS SDK (against a local KMS endpoint),
// verified by the daemon before containers ask.
package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
)

var (
	env        *testbed.Env
	daemon     *testbed.Daemon
	kms        *kmsfake.Server
	work       string // keys, bundle, node config, state
	bundle     string // the bundle file the node reads (edited with the CLI)
	nodeConfig string
	kmsEnv     []string
	ciKey      = "ci"    // witness "ci": local RSA key
	secKey     = "sec"   // witness "sec"
	otherKey   = "other" // a key no witness has
	bundleKey  = "bundle-signing"
	kmsRef     = "alikms://" + kmsfake.Region + "/" + kmsfake.AliasRSA
)

func TestMain(m *testing.M) { testbed.Main(m, "policy", run) }

func run(m *testing.M) (int, error) {
	var err error
	if env, err = testbed.Setup(true); err != nil {
		return 0, err
	}
	defer env.Close()
	if kms, err = kmsfake.New(); err != nil {
		return 0, err
	}
	defer kms.Close()
	kmsEnv = []string{
		"ALIBABA_CLOUD_ACCESS_KEY_ID=" + kmsfake.AccessKeyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + kmsfake.AccessKeySecret,
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
		"NRI_CSIG_KMS_ENDPOINT=http://" + kms.Endpoint,
	}
	work = filepath.Join(env.Containerd.Dir, "policy")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return 0, err
	}
	for _, k := range []string{ciKey, secKey, otherKey, bundleKey} {
		if _, err := cli("generate-key", "--output-key-prefix", filepath.Join(work, k)); err != nil {
			return 0, err
		}
	}
	bundle = filepath.Join(work, "bundle.yaml")
	steps := [][]string{
		{"witness", "create", "--name", "ci", "--key", keyFile(ciKey, "pub"), "--description", "CI pipeline"},
		{"witness", "create", "--name", "sec", "--key", keyFile(secKey, "pub"), "--description", "security review"},
		{"witness", "create", "--name", "kms", "--key", kmsRef, "--description", "release key in Alibaba Cloud KMS"},
		{"policy", "create", "--name", "ci-required", "--witness", "ci", "--cluster", "it", "--namespace", "signed", "--enabled"},
		{"policy", "create", "--name", "two-witnesses", "--witness", "ci,sec", "--cluster", "it", "--namespace", "two", "--enabled"},
		{"policy", "create", "--name", "switched-off", "--witness", "ci", "--cluster", "it", "--namespace", "off"},
		{"policy", "create", "--name", "trial", "--witness", "sec", "--cluster", "it", "--namespace", "trial", "--mode", "audit", "--enabled"},
		{"policy", "create", "--name", "release", "--witness", "kms", "--cluster", "it", "--namespace", "release", "--enabled"},
		{"policy", "create", "--name", "late", "--witness", "ci", "--cluster", "it", "--namespace", "late"},
		{"policy", "create", "--name", "everything", "--witness", "ci", "--cluster", "it", "--namespace", "*"},
	}
	for _, s := range steps {
		if _, err := cli(append(s, "--bundle", bundle)...); err != nil {
			return 0, err
		}
	}
	if _, err := cli("bundle", "sign", "--key", keyFile(bundleKey, "key"), "--bundle", bundle); err != nil {
		return 0, err
	}
	nodeConfig = filepath.Join(work, "node.yaml")
	cfg := fmt.Sprintf(`apiVersion: nri-csig.io/v1alpha1
kind: NodeConfig
cluster: it
bundle:
  file: %s
  interval: 1s
  signingKey: %s
stateDir: %s
`, bundle, keyFile(bundleKey, "pub"), filepath.Join(work, "state"))
	if err := os.WriteFile(nodeConfig, []byte(cfg), 0o644); err != nil {
		return 0, err
	}
	if daemon, err = env.Containerd.StartDaemon(nodeConfig); err != nil {
		return 0, err
	}
	return daemon.RunTests(m, 30), nil
}

func keyFile(name, ext string) string { return filepath.Join(work, name+"."+ext) }

// cli runs the nri-csig binary (with the fake KMS's credentials).
func cli(args ...string) (string, error) {
	return testbed.RunCLI(env.Tools.NRICsig, kmsEnv, args...)
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cli(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newImage builds a distinct busybox image, pushes it as repo:tag, signs it
// with each key reference, and pulls it into containerd.
func newImage(t *testing.T, reg *testbed.Registry, repoTag, marker string, signers ...string) testbed.Image {
	t.Helper()
	img, err := testbed.BusyboxImage(env.Tools.Busybox, marker)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := reg.Push(repoTag, img)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref(repoTag)
	for _, k := range signers {
		out := mustCLI(t, "sign", "--key", k, ref)
		if !strings.Contains(out, digest) {
			t.Fatalf("nri-csig sign did not say it signed %s:\n%s", digest, out)
		}
	}
	config, err := env.Containerd.Pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	return testbed.Image{Ref: ref, Digest: digest, ConfigDigest: config}
}

func fingerprint(t *testing.T, pubFile string) string {
	t.Helper()
	pub, err := keyref.OpenPublic(context.Background(), pubFile, keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fp, err := keys.Fingerprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}
