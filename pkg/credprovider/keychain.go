package credprovider

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/singleflight"
)

const (
	// MaxCacheEntries bounds the answers cached per provider; past it the
	// expired ones are dropped, then the one that expires first.
	MaxCacheEntries = 1024
	// FailureBackoff is how long a failed run is reported again for the
	// same image without running the plugin.
	FailureBackoff = 10 * time.Second
	// globalKey is the cache key of a Global answer.
	globalKey = "global"
)

var (
	_ authn.Keychain        = (*Keychain)(nil)
	_ authn.ContextKeychain = (*Keychain)(nil)
)

// Keychain resolves registry credentials through kubelet credential
// provider plugins. It is safe for concurrent use.
type Keychain struct {
	source    string // the config file, for messages
	providers []*provider
	skipped   []string
	log       *slog.Logger
	now       func() time.Time
	timeout   time.Duration // of one run: ExecTimeout
}

// Option configures New.
type Option func(*Keychain)

// WithLogger logs plugin runs (provider, image, cache key and duration;
// never credentials). The default discards.
func WithLogger(l *slog.Logger) Option { return func(k *Keychain) { k.log = l } }

// withClock replaces time.Now (tests).
func withClock(now func() time.Time) Option { return func(k *Keychain) { k.now = now } }

// withTimeout replaces ExecTimeout (tests).
func withTimeout(d time.Duration) Option { return func(k *Keychain) { k.timeout = d } }

// New reads the CredentialProviderConfig at configPath and finds each
// provider's plugin in binDir. A config kubelet would refuse, or a plugin
// that is not there, is an error.
func New(configPath, binDir string, opts ...Option) (*Keychain, error) {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return nil, err
	}
	k := &Keychain{source: configPath, log: slog.New(slog.DiscardHandler), now: time.Now, timeout: ExecTimeout}
	for _, o := range opts {
		o(k)
	}
	for _, p := range cfg.Providers {
		if p.TokenAttributes != nil {
			k.skipped = append(k.skipped, fmt.Sprintf("%s: tokenAttributes asks for a pod's service account token, which nri-csig does not have", p.Name))
			continue
		}
		pl, err := newPlugin(binDir, p)
		if err != nil {
			return nil, fmt.Errorf("credential provider config %s: %w", configPath, err)
		}
		k.providers = append(k.providers, &provider{
			plugin: pl, match: p.MatchImages, defaultTTL: p.DefaultCacheDuration.Duration,
			cache: map[string]entry{}, failures: map[string]failure{},
		})
	}
	return k, nil
}

// String names the keychain for errors: the providers and the config file.
func (k *Keychain) String() string {
	names := make([]string, len(k.providers))
	for i, p := range k.providers {
		names[i] = p.plugin.name
	}
	return fmt.Sprintf("kubelet credential providers %s (%s)", strings.Join(names, ", "), k.source)
}

// Skipped lists the configured providers that are never run, with why.
func (k *Keychain) Skipped() []string { return k.skipped }

// Resolve implements authn.Keychain.
func (k *Keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext returns the credential of the first provider (in config
// order) whose matchImages cover the resource and whose answer has an auth
// entry for it, or authn.Anonymous when none has. A plugin that fails is
// an error wrapping ErrPlugin: the caller reports it rather than trying the
// registry without the credentials the node pulls with.
func (k *Keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	image := imageOf(r)
	for _, p := range k.providers {
		if !p.covers(image) {
			continue
		}
		ring, err := p.answer(ctx, k, image)
		if err != nil {
			return nil, fmt.Errorf("kubelet credential provider %s (%s): %w", p.plugin.name, k.source, err)
		}
		if c, ok := ring.lookup(image); ok {
			return &Authenticator{source: fmt.Sprintf("kubelet credential provider %s (%s)", p.plugin.name, k.source), cred: c}, nil
		}
	}
	return authn.Anonymous, nil
}

// imageOf is the image string kubelet gives plugins: the repository
// without tag or digest, Docker Hub spelled docker.io.
func imageOf(r authn.Resource) string {
	s := r.String()
	if rest, ok := strings.CutPrefix(s, "index.docker.io"); ok && (rest == "" || rest[0] == '/') {
		s = "docker.io" + rest
	}
	return s
}

// Authenticator is a credential a provider supplied. It names its source
// (String) for errors and never prints the secret.
type Authenticator struct {
	source string
	cred   Credential
}

// Authorization implements authn.Authenticator.
func (a *Authenticator) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: a.cred.Username, Password: a.cred.Password}, nil
}

// String names the provider that supplied the credential; GoString too,
// so that no format verb prints the secret.
func (a *Authenticator) String() string   { return a.source }
func (a *Authenticator) GoString() string { return a.source }

type provider struct {
	plugin     *plugin
	match      []string
	defaultTTL time.Duration
	group      singleflight.Group

	mu       sync.Mutex
	cache    map[string]entry   // "image:", "registry:" or "global" + key -> answer
	failures map[string]failure // image -> last failed run
}

type entry struct {
	ring    keyring
	expires time.Time
}

type failure struct {
	err error
	at  time.Time
}

func (p *provider) covers(image string) bool {
	for _, m := range p.match {
		if matches(m, image) {
			return true
		}
	}
	return false
}

// answer returns the provider's answer for image: cached (image, then
// registry, then global key), or from one plugin run shared by concurrent
// callers.
func (p *provider) answer(ctx context.Context, k *Keychain, image string) (keyring, error) {
	now := k.now()
	p.mu.Lock()
	for _, key := range []string{"image:" + image, "registry:" + registryOf(image), globalKey} {
		if e, ok := p.cache[key]; ok {
			if now.Before(e.expires) {
				p.mu.Unlock()
				return e.ring, nil
			}
			delete(p.cache, key)
		}
	}
	if f, ok := p.failures[image]; ok {
		if now.Sub(f.at) < FailureBackoff {
			p.mu.Unlock()
			return keyring{}, fmt.Errorf("%w (failed %s ago; retried after %s)", f.err, now.Sub(f.at).Round(time.Second), FailureBackoff)
		}
		delete(p.failures, image)
	}
	p.mu.Unlock()

	// The run is not tied to one caller's context: it is shared, and
	// bounded by ExecTimeout; each caller waits only as long as its own.
	ch := p.group.DoChan(image, func() (any, error) {
		return p.runAndCache(context.WithoutCancel(ctx), k, image)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return keyring{}, res.Err
		}
		return res.Val.(keyring), nil
	case <-ctx.Done():
		return keyring{}, fmt.Errorf("waiting for the plugin: %w", ctx.Err())
	}
}

func (p *provider) runAndCache(ctx context.Context, k *Keychain, image string) (keyring, error) {
	start := k.now()
	resp, err := p.plugin.run(ctx, image, k.timeout)
	now := k.now()
	if err != nil {
		p.mu.Lock()
		if len(p.failures) >= MaxCacheEntries {
			clear(p.failures)
		}
		p.failures[image] = failure{err: err, at: now}
		p.mu.Unlock()
		k.log.Warn("credential provider plugin failed", "provider", p.plugin.name, "image", image, "error", err)
		return keyring{}, err
	}
	ttl := p.defaultTTL
	if resp.duration != nil {
		ttl = *resp.duration
	}
	var key string
	switch resp.keyType {
	case ImagePluginCacheKeyType:
		key = "image:" + image
	case RegistryPluginCacheKeyType:
		key = "registry:" + registryOf(image)
	default:
		key = globalKey
	}
	k.log.Debug("credential provider plugin answered", "provider", p.plugin.name, "image", image,
		"cache_key", key, "cache_duration", ttl.String(), "entries", len(resp.auth.index), "duration", now.Sub(start).String())
	if ttl > 0 {
		p.mu.Lock()
		p.store(key, entry{ring: resp.auth, expires: now.Add(ttl)}, now)
		p.mu.Unlock()
	}
	return resp.auth, nil
}

// store adds an answer, keeping at most MaxCacheEntries. Callers hold p.mu.
func (p *provider) store(key string, e entry, now time.Time) {
	if _, ok := p.cache[key]; !ok && len(p.cache) >= MaxCacheEntries {
		for k, old := range p.cache {
			if !now.Before(old.expires) {
				delete(p.cache, k)
			}
		}
		if len(p.cache) >= MaxCacheEntries {
			first := ""
			for k, old := range p.cache {
				if first == "" || old.expires.Before(p.cache[first].expires) {
					first = k
				}
			}
			delete(p.cache, first)
		}
	}
	p.cache[key] = e
}
