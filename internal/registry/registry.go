// Package registry builds the go-containerregistry options every registry
// client here shares: credentials from the docker config files, and plain
// HTTP only for loopback registries unless the caller explicitly allows an
// insecure registry.
package registry

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options configures registry access.
type Options struct {
	// Insecure allows plain HTTP and unverified TLS to any registry, not only loopback.
	Insecure bool
	// Keychain resolves credentials; the default is the docker config files.
	Keychain authn.Keychain
	// Transport is the base transport; the default is http.DefaultTransport.
	Transport http.RoundTripper
	// InsecureHosts (host[:port]) may be reached over plain HTTP, and only them
	// besides loopback (the node config's signatures.insecureRegistries).
	InsecureHosts []string
}

// NameOptions are the options to parse references with.
func (o Options) NameOptions() []name.Option {
	if o.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// ParseReference parses an image reference (tag or digest).
func (o Options) ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s, o.NameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", s, err)
	}
	return ref, nil
}

// RemoteOptions returns the go-containerregistry remote options.
func (o Options) RemoteOptions() []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	base := o.Transport
	if base == nil {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		if o.Insecure {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // explicit --allow-insecure-registry
		}
		base = t
	}
	return []remote.Option{
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(&httpGuard{next: base, insecure: o.Insecure, hosts: o.InsecureHosts}),
	}
}

// httpGuard refuses plain HTTP to registries that are not on loopback.
// go-containerregistry falls back to HTTP for RFC 1918 and *.local names
// too, where a network attacker could answer instead of the registry.
type httpGuard struct {
	next     http.RoundTripper
	insecure bool
	hosts    []string
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.insecure && !IsLoopback(req.URL.Hostname()) && !slices.Contains(g.hosts, req.URL.Host) {
		return nil, fmt.Errorf("refusing plain HTTP to registry %s: only loopback registries may use HTTP; pass --allow-insecure-registry to allow it", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}

// IsLoopback reports whether host (without port) is localhost or a loopback IP.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
