package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/nri-csig/nri-csig/internal/registry/check"
)

// Defaults of a Client's timeouts and connection pool.
const (
	// DefaultDialTimeout bounds a TCP connect, and a TLS handshake.
	DefaultDialTimeout = 5 * time.Second
	// DefaultResponseTimeout bounds the wait for an answer's headers once
	// the request is sent (go-containerregistry's default transport has none).
	DefaultResponseTimeout = 10 * time.Second
	// DefaultCallTimeout bounds one exchange, from the request to the last
	// byte of the answer, whatever the caller's context allows.
	DefaultCallTimeout = 30 * time.Second
	// IdleConnTimeout is how long an idle kept-alive connection stays open.
	IdleConnTimeout = 30 * time.Second
	// MaxIdleConnsPerHost bounds the idle connections kept per registry.
	MaxIdleConnsPerHost = 2
	// maxIdleConns bounds the idle connections kept in all.
	maxIdleConns = 16
	// maxConnsPerHost bounds the connections open to one registry at once;
	// more callers wait (within their deadline) for one to be free.
	maxConnsPerHost = 32
	// maxScopes bounds the authentication handshakes kept (one per
	// registry and repository scope).
	maxScopes = 1024
	// scopeTTL is how long a handshake is reused; credentials read from the
	// keychain are read again after it.
	scopeTTL = 10 * time.Minute
)

// Options configures a Client. The zero value is the safe one: HTTPS with
// verified certificates to every registry but loopback ones, credentials from
// the docker config files, default timeouts.
type Options struct {
	// AllowHTTP allows plain HTTP to every registry (cosign's
	// --allow-http-registry). The default, false, allows it only to loopback
	// registries and HTTPHosts; any other registry must speak HTTPS, even
	// one on a private address, which go-containerregistry alone would
	// reach over HTTP.
	AllowHTTP bool
	// SkipTLSVerify accepts any TLS certificate (cosign's
	// --allow-insecure-registry). It does not allow plain HTTP. The default
	// is false.
	SkipTLSVerify bool
	// HTTPHosts (host[:port], as in the node config's insecureRegistries)
	// may be reached over plain HTTP, and only them besides loopback.
	HTTPHosts []string
	// Keychain resolves credentials. The default is authn.DefaultKeychain.
	Keychain authn.Keychain
	// Transport replaces the Client's own HTTP transport (tests, proxies).
	// The Client still applies its scheme rules and CallTimeout on top.
	Transport http.RoundTripper
	// ConfigPath is containerd's registry config_path, the hosts.toml tree
	// (e.g. /etc/containerd/certs.d): the mirrors, CA files, client
	// certificates, skip_verify and headers of each registry, read with
	// containerd's own parser, so that signatures are read the way the node
	// pulls. Empty: every registry is reached directly with the settings
	// above, and so is a registry the tree has no directory for.
	ConfigPath string
	// DialTimeout, ResponseTimeout and CallTimeout override the defaults
	// above (DefaultDialTimeout ...) when positive.
	DialTimeout, ResponseTimeout, CallTimeout time.Duration
}

// Client reaches OCI registries. It is safe for concurrent use; build one
// per process (daemon or CLI run) and share it.
type Client struct {
	opts Options
	// http is the one HTTP transport, below the scheme rules and deadline.
	http http.RoundTripper
	// rt is what every request goes through: scheme rules, deadline, http.
	rt  http.RoundTripper
	now func() time.Time

	mu      sync.Mutex
	schemes map[string]string // registry host[:port] -> "https" or "http", once learned
	scopes  map[string]*scope // registry + " " + scope -> handshake
	// open holds, per registry host, whether it answered its ping without
	// asking for credentials: then every repository there is read with no
	// handshake of its own (one ping per registry, not per repository).
	open map[string]*scope
	// hosts holds, per registry, its endpoints read from ConfigPath;
	// byHost, per endpoint host, the endpoint requests to it go through.
	hosts  map[string]*hostsEntry
	byHost map[string]*Endpoint
}

type scope struct {
	lock   chan struct{}     // one handshake at a time; waiting respects the caller's context
	rt     http.RoundTripper // nil until the handshake succeeded
	at     time.Time
	source string // where the credentials came from
}

type hostsEntry struct {
	eps []Endpoint
	err error
	at  time.Time
}

// hostsTTL is how long a registry's hosts.toml is used before it is read
// again (containerd reads it at every pull; here a minute is the delay).
const hostsTTL = time.Minute

// New returns a Client.
func New(o Options) *Client {
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ResponseTimeout <= 0 {
		o.ResponseTimeout = DefaultResponseTimeout
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	c := &Client{opts: o, http: o.Transport, now: time.Now, schemes: map[string]string{}, scopes: map[string]*scope{}, open: map[string]*scope{},
		hosts: map[string]*hostsEntry{}, byHost: map[string]*Endpoint{}}
	if c.http == nil {
		c.http = newTransport(o)
	}
	c.rt = exchange{c}
	return c
}

func newTransport(o Options) *http.Transport {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.ResponseTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       IdleConnTimeout,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   MaxIdleConnsPerHost,
		MaxConnsPerHost:       maxConnsPerHost,
	}
	if o.SkipTLSVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // explicit --allow-insecure-registry
	}
	return t
}

// HTTPAllowed reports whether plain HTTP may be used to host (host[:port]).
// A host hosts.toml names with "http://" may: the node pulls from it so.
func (c *Client) HTTPAllowed(host string) bool {
	if c.opts.AllowHTTP || check.LoopbackHostPort(host) || slices.Contains(c.opts.HTTPHosts, host) {
		return true
	}
	ep := c.endpoint(host)
	return ep != nil && ep.Scheme == "http"
}

// endpoint returns the hosts.toml endpoint requests to host go through,
// or nil.
func (c *Client) endpoint(host string) *Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byHost[host]
}

// endpoints returns the endpoints of registry from ConfigPath (nil: reach
// it directly), read at most once a minute.
func (c *Client) endpoints(ctx context.Context, registry string) ([]Endpoint, error) {
	if c.opts.ConfigPath == "" {
		return nil, nil
	}
	c.mu.Lock()
	e, ok := c.hosts[registry]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < hostsTTL {
		return e.eps, e.err
	}
	eps, err := hostsFor(ctx, c.opts.ConfigPath, registry, c.opts.tuneTransport)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.hosts) >= maxScopes {
		clear(c.hosts)
	}
	c.hosts[registry] = &hostsEntry{eps: eps, err: err, at: c.now()}
	if len(c.byHost) >= maxScopes {
		clear(c.byHost)
	}
	seen := map[string]bool{}
	for i := range eps {
		// A host listed twice (a host entry and the server) is reached
		// with its first entry's settings.
		ep := &eps[i]
		if seen[ep.Host] {
			continue
		}
		seen[ep.Host] = true
		c.byHost[ep.Host] = ep
		if ep.Scheme == "http" && c.schemes[ep.Host] == "" {
			c.schemes[ep.Host] = "http"
		}
	}
	return eps, err
}

func (c *Client) scheme(host string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.schemes[host]
}

func (c *Client) learn(host, scheme string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.schemes) >= maxScopes {
		clear(c.schemes)
	}
	c.schemes[host] = scheme
}

func (c *Client) forget(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.schemes, host)
}

// exchange is the bottom of every request: it refuses plain HTTP where it is
// not allowed, sends a request to a registry known to speak plain HTTP over
// HTTP at once (no failing TLS attempt each time), learns the scheme of a
// registry at its first answer, and bounds every exchange by CallTimeout.
type exchange struct{ c *Client }

func (x exchange) RoundTrip(req *http.Request) (*http.Response, error) {
	c := x.c
	host := req.URL.Host
	ep := c.endpoint(host)
	if ep != nil {
		req = ep.rewrite(req)
	}
	resp, err := x.roundTrip(req, host, ep)
	if err != nil {
		return nil, c.tlsError(host, ep, err)
	}
	return resp, nil
}

func (x exchange) roundTrip(req *http.Request, host string, ep *Endpoint) (*http.Response, error) {
	c := x.c
	if req.URL.Scheme == "http" && !c.HTTPAllowed(host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain HTTP to registry %s: only loopback registries are reached without TLS; serve it over HTTPS, or allow HTTP explicitly (--allow-http-registry, or the node config's insecureRegistries)", host)
	}
	// The scheme is read once: read again after the request was shaped, it
	// could have been learned meanwhile by another request, and this one,
	// gone out over HTTPS, would then not fall back to HTTP.
	known := c.scheme(host)
	if req.URL.Scheme == "https" && known == "http" {
		req = withScheme(req, "http")
	}
	learned := known != ""
	resp, err := c.send(req, ep)
	if err == nil {
		// Only an HTTPS answer, or the fallback below, teaches the scheme: a
		// plain HTTP request that got an answer (go-containerregistry's ping
		// racer) proves nothing about HTTPS, e.g. after a certificate error.
		if !learned && req.URL.Scheme == "https" {
			c.learn(host, "https")
		}
		return resp, nil
	}
	// go-containerregistry falls back to HTTP the same way, but on every
	// new transport; here it happens once per registry.
	if req.URL.Scheme == "https" && !learned && c.HTTPAllowed(host) && speaksHTTP(err) && (req.Body == nil || req.GetBody != nil) {
		h := withScheme(req, "http")
		if req.GetBody != nil {
			if h.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		resp, herr := c.send(h, ep)
		if herr == nil {
			c.learn(host, "http")
			return resp, nil
		}
		return nil, herr // the registry speaks HTTP: its HTTP error is the one that says why
	}
	if learned {
		c.forget(host) // learn again at the next exchange
	}
	return nil, err
}

func (c *Client) send(req *http.Request, ep *Endpoint) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), c.opts.CallTimeout)
	rt := c.http
	if ep != nil && ep.rt != nil {
		rt = ep.rt // the host's CA, client certificates, skip_verify
	}
	resp, err := rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

func withScheme(req *http.Request, scheme string) *http.Request {
	r := req.Clone(req.Context())
	r.URL.Scheme = scheme
	return r
}

// speaksHTTP reports whether a failed HTTPS attempt says that the registry
// may speak plain HTTP: it answered TLS with HTTP, or refused the HTTPS port.
// A certificate error or a timeout is not a reason to drop TLS.
func speaksHTTP(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") ||
		errors.Is(err, syscall.ECONNREFUSED)
}

// cancelOnClose ends an exchange's deadline when its answer is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// openHost returns repo at its host after its handshake (see Repo).
func (c *Client) openHost(ctx context.Context, repo name.Repository, write bool) (*hostRepo, error) {
	if !write {
		r, err := c.openRepo(ctx, repo)
		if err != nil {
			// The registry did not answer its ping: a handshake, which
			// pings again, would only wait as long a second time.
			return nil, fmt.Errorf("contacting registry %s: %w", repo.RegistryStr(), err)
		}
		if r != nil {
			return r, nil
		}
	}
	return c.handshake(ctx, repo, write)
}

// handshake returns repo after go-containerregistry's handshake for its
// scope, cached.
func (c *Client) handshake(ctx context.Context, repo name.Repository, write bool) (*hostRepo, error) {
	sc := repo.Scope(transport.PullScope)
	if write {
		sc = repo.Scope(transport.PushScope)
	}
	key := repo.RegistryStr() + " " + sc
	c.mu.Lock()
	s, ok := c.scopes[key]
	if !ok {
		if len(c.scopes) >= maxScopes {
			for k := range c.scopes { // drop one: any will do
				delete(c.scopes, k)
				break
			}
		}
		s = &scope{lock: make(chan struct{}, 1)}
		c.scopes[key] = s
	}
	c.mu.Unlock()

	select {
	case s.lock <- struct{}{}:
		defer func() { <-s.lock }()
	case <-ctx.Done():
		return nil, fmt.Errorf("contacting registry %s: %w", repo.RegistryStr(), ctx.Err())
	}
	if s.rt == nil || c.now().Sub(s.at) > scopeTTL {
		auth, source, err := sourceOf(ctx, c.opts.Keychain, repo)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", repo, err)
		}
		rt, err := transport.NewWithContext(ctx, repo.Registry, auth, c.rt, []string{sc})
		if err != nil {
			return nil, fmt.Errorf("contacting registry %s: %w", repo.RegistryStr(), c.accessError(repo.RegistryStr(), source, err))
		}
		s.rt, s.at, s.source = rt, c.now(), source
	}
	return &hostRepo{c: c, repo: repo, rt: s.rt, source: s.source, client: &http.Client{Transport: s.rt, CheckRedirect: checkRedirect}}, nil
}

// openRepo returns repo for reading without a handshake of its own when its
// registry asks no credentials and the keychain has none for it, and nil
// otherwise. The error is the ping's when the registry could not be reached
// (an HTTP error answer is not one: the handshake then says what it means).
func (c *Client) openRepo(ctx context.Context, repo name.Repository) (*hostRepo, error) {
	auth, source, err := sourceOf(ctx, c.opts.Keychain, repo)
	if err != nil || auth != authn.Anonymous {
		return nil, nil
	}
	host := repo.RegistryStr()
	c.mu.Lock()
	s, ok := c.open[host]
	if !ok {
		if len(c.open) >= maxScopes {
			clear(c.open)
		}
		s = &scope{lock: make(chan struct{}, 1)}
		c.open[host] = s
	}
	c.mu.Unlock()
	select {
	case s.lock <- struct{}{}:
		defer func() { <-s.lock }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.at.IsZero() || c.now().Sub(s.at) > scopeTTL {
		ch, err := transport.Ping(ctx, repo.Registry, c.rt)
		var te *transport.Error
		if errors.As(err, &te) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		s.rt, s.at = nil, c.now()
		if ch.Scheme == "" { // 200: no credentials asked
			s.rt = c.rt
		}
	}
	if s.rt == nil {
		return nil, nil
	}
	return &hostRepo{c: c, repo: repo, rt: s.rt, open: true, source: source, client: &http.Client{Transport: s.rt, CheckRedirect: checkRedirect}}, nil
}

// closeHost records that host asked for credentials after all: its
// repositories go through the handshake from now on.
func (c *Client) closeHost(host string) {
	c.mu.Lock()
	s := c.open[host]
	c.mu.Unlock()
	if s == nil {
		return
	}
	select {
	case s.lock <- struct{}{}:
		s.rt = nil
		<-s.lock
	default: // a ping is under way; it decides
	}
}

// checkRedirect follows at most 5 redirects (blob downloads are often
// redirected to storage), never from a registry to a private or link-local
// IP literal elsewhere (cloud metadata services), as go-containerregistry.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("registry redirected more than 5 times")
	}
	from, to := via[0].URL.Hostname(), req.URL.Hostname()
	if to == from {
		return nil
	}
	if ip := net.ParseIP(to); ip != nil && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified()) {
		return fmt.Errorf("registry %s redirected to the private address %s; refused", from, to)
	}
	return nil
}
