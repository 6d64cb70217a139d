package daemon

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/regcreds"
)

// maxKeyFileSize bounds the bundle-signing key file: a PEM public key is
// well under 2 KiB.
const maxKeyFileSize = 64 << 10

// CheckConfig reads the node config at path and runs every check the
// daemon's start runs on it (the same function): parsing, paths, the
// bundle-signing key file (parsed, its type checked) and the bundle sources
// (references parsed). It connects to nothing. A config it accepts starts
// the daemon, and is accepted by a reload unless a field that needs a
// restart changed.
func CheckConfig(path string) (*nodeconfig.Config, error) {
	node, err := nodeconfig.Load(path)
	if err != nil {
		return nil, err
	}
	if err := checkNode(node); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return node, nil
}

// checkNode is what daemon start and reload check beyond parsing.
func checkNode(node *nodeconfig.Config) error {
	for _, p := range []struct{ field, path string }{
		{"stateDir", node.StateDir},
		{"bundle.file", node.Bundle.File},
		{"bundle.signingKey", strings.TrimPrefix(node.Bundle.SigningKey, "file://")},
		{"signatures.dir", node.Signatures.Dir},
	} {
		if p.path != "" && !filepath.IsAbs(p.path) && !strings.Contains(p.path, "://") {
			return fmt.Errorf("%s: %q is a relative path; give an absolute one (the daemon's working directory is not yours)", p.field, p.path)
		}
	}
	if _, err := regcreds.Sources(node, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	if node.Bundle.Configured() {
		// Builds the store the daemon would run (no I/O), so that a bad
		// reference or key is refused here exactly as at start.
		d := &daemon{log: slog.New(slog.DiscardHandler)}
		if _, err := d.openBundleStore(context.Background(), node); err != nil {
			return err
		}
	}
	return nil
}

// openSigningKey reads the node's bundle-signing public key: a PEM public
// key file, RSA of at least 2048 bits or EC P-256. A node verifies bundles
// offline, so a KMS reference, a private key or a certificate is refused
// with what to give instead.
func openSigningKey(ref string) (crypto.PublicKey, error) {
	if i := strings.Index(ref, "://"); i >= 0 && ref[:i] != "file" {
		return nil, fmt.Errorf("%q: a node verifies bundles offline and needs the public key file; write it with 'nri-csig public-key --key %s --outfile bundle-signing.pub'", ref, ref)
	}
	path := strings.TrimPrefix(ref, "file://")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes; it should hold one PEM public key", path, maxKeyFileSize)
	}
	pub, err := keys.ParsePublicKeyPEM(data)
	if err != nil {
		if strings.Contains(string(data), "PRIVATE KEY-----") {
			return nil, fmt.Errorf("%s holds a private key; a node needs only the public key: 'nri-csig public-key --key %s --outfile bundle-signing.pub'", path, path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// needsRestart names the first setting of next that differs from cur and
// that only a restart applies: where state is kept and where signatures
// are found are fixed when the daemon opens its stores.
func needsRestart(cur, next *nodeconfig.Config) error {
	field := ""
	switch {
	case cur.StateDir != next.StateDir:
		field = "stateDir"
	case cur.Signatures.Registry != next.Signatures.Registry:
		field = "signatures.registry"
	case cur.Signatures.Dir != next.Signatures.Dir:
		field = "signatures.dir"
	case !slices.Equal(cur.Signatures.InsecureRegistries, next.Signatures.InsecureRegistries):
		field = "signatures.insecureRegistries"
	case cur.Registries.ConfigPath != next.Registries.ConfigPath:
		field = "registries.configPath"
	case cur.Registries.DockerConfig != next.Registries.DockerConfig:
		field = "registries.dockerConfig"
	case cur.Registries.CredentialProviders != next.Registries.CredentialProviders:
		field = "registries.credentialProviders"
	default:
		return nil
	}
	return fmt.Errorf("needs a restart: %s: the daemon applies it only at start; restart nri-csig to apply it, or put back the value in force", field)
}
