package registry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
)

// Endpoint is one host a registry's repositories are reached through, as
// containerd's hosts.toml lists them: a mirror, or the registry itself (the
// "server", last).
type Endpoint struct {
	// Host is the host[:port] requests go to.
	Host string
	// Scheme is "https" or "http" (hosts.toml's "http://" prefix).
	Scheme string
	// Path is the API root: "/v2", or the host's path (as is with
	// override_path).
	Path string
	// Pull, Resolve and Push are the host's capabilities: Pull reads by
	// digest, Resolve reads tags, Push writes.
	Pull, Resolve, Push bool
	// Mirror is true for a host other than the registry the image names:
	// requests carry ?ns=<registry>, as containerd's do.
	Mirror bool
	// CAFiles are the CA files hosts.toml (or the Docker certs.d layout)
	// names for the host, for error messages; nil: the system pool.
	CAFiles []string
	// Header is hosts.toml's extra headers for the host.
	Header http.Header
	// rt carries the host's TLS configuration (CA, client certificates,
	// skip_verify), built by containerd's ConfigureHosts.
	rt http.RoundTripper
}

// hostsFor reads the endpoints of registry (host[:port]) from the
// hosts.toml tree at root with containerd's own parser, in containerd's
// order: the host entries as the file lists them, then the server. It
// returns nil when the tree has no directory for the registry (nor a
// _default one): the registry is then reached with the Client's defaults,
// as containerd does.
//
// root may list several trees, separated by ':' as containerd's
// config_path does ("/etc/containerd/certs.d:/etc/docker/certs.d"): the
// first with a directory for the registry is used.
func hostsFor(ctx context.Context, root, registry string, tune func(*http.Client) error) ([]Endpoint, error) {
	var dir string
	for _, r := range filepath.SplitList(root) {
		d, err := config.HostDirFromRoot(r)(registry)
		if err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("registries.configPath %s: %w", root, err)
		}
		if d != "" {
			dir = d
			break
		}
	}
	if dir == "" {
		return nil, nil
	}
	hosts := config.ConfigureHosts(ctx, config.HostOptions{
		HostDir:      func(string) (string, error) { return dir, nil },
		UpdateClient: tune,
	})
	rhs, err := hosts(registry)
	if err != nil {
		return nil, fmt.Errorf("registries.configPath %s: hosts of %s: %w", root, registry, err)
	}
	cas := caFiles(dir)
	eps := make([]Endpoint, 0, len(rhs))
	for _, h := range rhs {
		ep := Endpoint{
			Host: h.Host, Scheme: h.Scheme, Path: h.Path, Header: h.Header,
			Pull:    h.Capabilities.Has(docker.HostCapabilityPull),
			Resolve: h.Capabilities.Has(docker.HostCapabilityResolve),
			Push:    h.Capabilities.Has(docker.HostCapabilityPush),
			Mirror:  h.Host != registry && !(registry == "docker.io" && h.Host == "registry-1.docker.io"),
			CAFiles: cas[h.Host],
		}
		if ep.CAFiles == nil && h.Host == registry {
			ep.CAFiles = cas[""] // the Docker certs.d layout
		}
		if h.Client != nil {
			ep.rt = h.Client.Transport
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// caFiles returns, per host[:port], the CA files a host directory names:
// hosts.toml's "ca" of each host entry and of the server, or the *.crt files
// of the Docker certs.d layout when there is no hosts.toml. It is only for
// error messages; the connection's configuration is containerd's.
func caFiles(dir string) map[string][]string {
	out := map[string][]string{}
	b, err := os.ReadFile(filepath.Join(dir, "hosts.toml"))
	if err != nil || len(b) == 0 {
		ents, _ := os.ReadDir(dir)
		var crts []string
		for _, e := range ents {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".crt") {
				crts = append(crts, filepath.Join(dir, e.Name()))
			}
		}
		out[""] = crts // the one default host: see hostsFor's caller
		return out
	}
	var f struct {
		Server string                    `toml:"server"`
		CA     any                       `toml:"ca"`
		Host   map[string]map[string]any `toml:"host"`
	}
	if toml.Unmarshal(b, &f) != nil {
		return out
	}
	add := func(server string, ca any) {
		if !strings.Contains(server, "://") {
			server = "https://" + server
		}
		host := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
		host, _, _ = strings.Cut(host, "/")
		var files []string
		switch v := ca.(type) {
		case string:
			files = []string{v}
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					files = append(files, s)
				}
			}
		}
		for i, p := range files {
			if !filepath.IsAbs(p) {
				files[i] = filepath.Join(dir, p)
			}
		}
		if len(files) > 0 {
			out[host] = files
		}
	}
	add(f.Server, f.CA)
	for h, c := range f.Host {
		add(h, c["ca"])
	}
	return out
}

// tuneTransport gives a transport containerd built for a host the Client's
// bounds: connect, TLS handshake and answer-header timeouts, and the
// connection pool's limits.
func (o Options) tuneTransport(c *http.Client) error {
	t, ok := c.Transport.(*http.Transport)
	if !ok {
		return nil
	}
	t.DialContext = (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = o.DialTimeout
	t.ResponseHeaderTimeout = o.ResponseTimeout
	t.ExpectContinueTimeout = time.Second
	t.IdleConnTimeout = IdleConnTimeout
	t.MaxIdleConns = maxIdleConns
	t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	t.MaxConnsPerHost = maxConnsPerHost
	t.ForceAttemptHTTP2 = true
	if o.SkipTLSVerify && t.TLSClientConfig != nil {
		t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // explicit --allow-insecure-registry
	}
	return nil
}
