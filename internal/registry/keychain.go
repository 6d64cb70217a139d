package registry

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// NamedKeychain is one credential source, with the name errors use for it
// ("docker config /etc/nri-csig/docker/config.json", "kubelet credential
// provider ecr", "the default keychain"). The name never holds a secret.
type NamedKeychain struct {
	Name     string
	Keychain authn.Keychain
}

// DefaultSource is the last source of every chain the daemon and the CLI
// build: go-containerregistry's default keychain ($DOCKER_CONFIG or
// ~/.docker/config.json, then Podman's auth.json).
var DefaultSource = NamedKeychain{Name: "the default keychain (DOCKER_CONFIG or ~/.docker/config.json)", Keychain: authn.DefaultKeychain}

// ChainKeychain asks its sources in order; the first with credentials for a
// registry gives them. It is an authn.Keychain that can also say which
// source answered (ResolveNamed), so that a refusal names it.
type ChainKeychain struct {
	sources []NamedKeychain
}

// Chain returns the chain of sources, asked in the order given. Sources
// without a Keychain are left out.
func Chain(sources ...NamedKeychain) *ChainKeychain {
	c := &ChainKeychain{}
	for _, s := range sources {
		if s.Keychain != nil {
			c.sources = append(c.sources, s)
		}
	}
	return c
}

var (
	_ authn.Keychain        = (*ChainKeychain)(nil)
	_ authn.ContextKeychain = (*ChainKeychain)(nil)
)

// Resolve implements authn.Keychain.
func (c *ChainKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return c.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain.
func (c *ChainKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	a, _, err := c.ResolveNamed(ctx, r)
	return a, err
}

// ResolveNamed returns the credentials of the first source that has some
// for r, and that source's name; authn.Anonymous and the names of every
// source asked when none has. A source that fails stops the chain: its
// error names it (falling through to the next source would hide a broken
// configuration behind other credentials, or none).
func (c *ChainKeychain) ResolveNamed(ctx context.Context, r authn.Resource) (authn.Authenticator, string, error) {
	for _, s := range c.sources {
		a, err := resolveBounded(ctx, s.Keychain, r)
		if err != nil {
			return nil, s.Name, fmt.Errorf("credentials for %s from %s: %w", r.RegistryStr(), s.Name, err)
		}
		if a != nil && a != authn.Anonymous {
			return a, s.Name, nil
		}
	}
	return authn.Anonymous, "no credentials (asked: " + c.names() + ")", nil
}

// CredentialTimeout bounds one credential source's answer: a Docker
// credential helper or a credential provider plugin is a program that may
// hang, and the handshake waiting for it holds its repository's reads.
const CredentialTimeout = 10 * time.Second

type resolved struct {
	a   authn.Authenticator
	err error
}

// resolveBounded asks kc within ctx and CredentialTimeout. A source that
// does not answer in time is a failure; its call ends in the background.
func resolveBounded(ctx context.Context, kc authn.Keychain, r authn.Resource) (authn.Authenticator, error) {
	ctx, cancel := context.WithTimeout(ctx, CredentialTimeout)
	defer cancel()
	done := make(chan resolved, 1)
	go func() {
		a, err := authn.Resolve(ctx, kc, r)
		done <- resolved{a, err}
	}()
	select {
	case x := <-done:
		return x.a, x.err
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer: %w", ctx.Err())
	}
}

func (c *ChainKeychain) names() string {
	n := make([]string, len(c.sources))
	for i, s := range c.sources {
		n[i] = s.Name
	}
	if len(n) == 0 {
		return "no source"
	}
	return strings.Join(n, ", ")
}

// sourceOf returns the credentials for r and the name of where they came
// from, for any keychain.
func sourceOf(ctx context.Context, kc authn.Keychain, r authn.Resource) (authn.Authenticator, string, error) {
	if c, ok := kc.(*ChainKeychain); ok {
		return c.ResolveNamed(ctx, r)
	}
	a, err := authn.Resolve(ctx, kc, r)
	if kc == authn.DefaultKeychain {
		if a == authn.Anonymous {
			return a, "no credentials (asked: " + DefaultSource.Name + ")", err
		}
		return a, DefaultSource.Name, err
	}
	if a == authn.Anonymous {
		return a, "no credentials", err
	}
	return a, "the configured keychain", err
}

// MaxDockerConfigSize bounds a Docker config file: real ones are a few
// kilobytes.
const MaxDockerConfigSize = 1 << 20

// DockerConfig returns the credential source of one Docker config.json
// file (auths, credHelpers, credsStore), as docker, crane and cosign read
// it, named "docker config PATH". The file is read again when it changes
// (its size or modification time), checked at most once a second; a
// missing file has no credentials (the node may not have any yet), a
// malformed one is an error that names it.
func DockerConfig(path string) NamedKeychain {
	return NamedKeychain{Name: "docker config " + path, Keychain: &dockerConfig{path: path, now: time.Now}}
}

type dockerConfig struct {
	path string
	now  func() time.Time // time.Now; a test's clock

	mu      sync.Mutex
	checked time.Time
	size    int64
	mtime   time.Time
	cf      *configfile.ConfigFile // nil: no file
	err     error
}

func (d *dockerConfig) Resolve(r authn.Resource) (authn.Authenticator, error) {
	cf, err := d.load()
	if err != nil || cf == nil {
		return authn.Anonymous, err
	}
	// The keys go-containerregistry's default keychain looks up, in its order.
	var empty types.AuthConfig
	for _, key := range []string{r.String(), r.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", d.path, err)
		}
		ac.ServerAddress = ""
		if ac != empty {
			return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
				IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
		}
	}
	return authn.Anonymous, nil
}

func (d *dockerConfig) load() (*configfile.ConfigFile, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if !d.checked.IsZero() && now.Sub(d.checked) < time.Second {
		return d.cf, d.err
	}
	d.checked = now
	fi, err := os.Stat(d.path)
	if os.IsNotExist(err) {
		d.cf, d.err, d.size, d.mtime = nil, nil, -1, time.Time{}
		return nil, nil
	}
	if err != nil {
		d.cf, d.err = nil, fmt.Errorf("docker config %s: %w", d.path, err)
		return nil, d.err
	}
	if fi.Size() == d.size && fi.ModTime().Equal(d.mtime) {
		return d.cf, d.err
	}
	d.size, d.mtime = fi.Size(), fi.ModTime()
	d.cf, d.err = readDockerConfig(d.path)
	return d.cf, d.err
}

func readDockerConfig(path string) (*configfile.ConfigFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxDockerConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	if len(b) > MaxDockerConfigSize {
		return nil, fmt.Errorf("docker config %s is larger than %d bytes", path, MaxDockerConfigSize)
	}
	cf, err := config.LoadFromReader(strings.NewReader(string(b)))
	if err != nil {
		// The parser's message may quote the file; say only where it is.
		return nil, fmt.Errorf("docker config %s is not a valid config.json (want {\"auths\": {\"registry\": {\"auth\": \"...\"}}})", path)
	}
	cf.Filename = path
	return cf, nil
}
