package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Repo is one repository reached through a Client: through the hosts
// hosts.toml lists for its registry (mirrors first, in the file's order,
// then the registry itself), or the registry alone when there is no
// hosts.toml for it.
//
// A read goes to the first host that has what it asks for: a host that
// answers 404, refuses access or cannot be reached passes the read to the
// next one, as containerd's pulls do. Only hosts whose capabilities allow
// the read are asked: "pull" for digests (blobs, signature manifests by
// digest, referrers), "pull" and "resolve" for tags (the cosign signature
// tag). A Repo is used by one goroutine at a time.
type Repo struct {
	c     *Client
	repo  name.Repository // as the image names it
	write bool
	vias  []*via
}

// via is one host of a Repo, opened (handshake) at its first use.
type via struct {
	ep     *Endpoint // nil: the registry, with the Client's defaults
	repo   name.Repository
	ns     string
	tags   bool // the host may resolve tags
	opened bool
	r      *hostRepo
	err    error
}

// Repo returns access to one repository: the authentication handshake for
// its pull scope (push and pull when write) with its first host is done now,
// once per Client, host and scope (and again after 10 minutes), and reused
// by every call on the result. Reading from a registry that answers its
// ping without asking for credentials, with no credentials for it in the
// keychain, needs no handshake per repository: the registry is pinged once.
// Writes go to the registry itself (the hosts.toml server, with its TLS
// settings), never to a mirror.
func (c *Client) Repo(ctx context.Context, repo name.Repository, write bool) (*Repo, error) {
	eps, err := c.endpoints(ctx, repo.RegistryStr())
	if err != nil {
		return nil, err
	}
	r := &Repo{c: c, repo: repo, write: write}
	if eps == nil {
		r.vias = []*via{{repo: repo, tags: true}}
	}
	for i := range eps {
		ep := eps[i]
		switch {
		case write && (!ep.Push || ep.Mirror):
			continue
		case !write && !ep.Pull:
			continue
		}
		v := &via{ep: &ep, repo: repo, tags: ep.Resolve}
		if ep.Mirror {
			reg, err := name.NewRegistry(ep.Host)
			if err != nil {
				return nil, fmt.Errorf("registries.configPath %s: mirror %q of %s: %w", c.opts.ConfigPath, ep.Host, repo.RegistryStr(), err)
			}
			v.repo, v.ns = reg.Repo(repo.RepositoryStr()), repo.RegistryStr()
		}
		r.vias = append(r.vias, v)
	}
	if len(r.vias) == 0 {
		what := "pull"
		if write {
			what = "push (and is not a mirror)"
		}
		return nil, fmt.Errorf("registries.configPath %s: no host of %s has the %s capability; check its hosts.toml", c.opts.ConfigPath, repo.RegistryStr(), what)
	}
	// Open the first host that answers now, so that an unreachable
	// registry is said at once.
	var errs []error
	for _, v := range r.vias {
		_, err := r.open(ctx, v)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (r *Repo) open(ctx context.Context, v *via) (*hostRepo, error) {
	if !v.opened {
		v.opened = true
		v.r, v.err = r.c.openHost(ctx, v.repo, r.write)
		if v.r != nil {
			v.r.ns = v.ns
		}
	}
	return v.r, v.err
}

// RemoteOptions returns go-containerregistry remote options that reuse this
// repository's transport and handshake (no new ping), for writes.
func (r *Repo) RemoteOptions(ctx context.Context) []remote.Option {
	for _, v := range r.vias {
		if v.r != nil {
			return []remote.Option{remote.WithTransport(v.r.rt), remote.WithContext(ctx)}
		}
	}
	return []remote.Option{remote.WithTransport(r.c.rt), remote.WithContext(ctx)}
}

// each calls f with each host in order until one answers: f's error passes
// the call to the next host when it is a 404, a refusal of access or a
// failure to reach the host. What the host served that is refused
// (ErrTooLarge, ErrWrongDigest ...) is returned at once. When no host
// answers, the error is a 404 if every host said 404, else every host's
// failure.
func (r *Repo) each(ctx context.Context, tag bool, f func(*hostRepo) error) error {
	var errs []error
	var notFound error
	asked := 0
	for _, v := range r.vias {
		if tag && !v.tags {
			continue
		}
		asked++
		h, err := r.open(ctx, v)
		if err == nil {
			err = f(h)
		}
		switch {
		case err == nil:
			return nil
		case IsNotFound(err):
			notFound = err
		case errors.Is(err, ErrTooLarge) || errors.Is(err, ErrWrongDigest) || errors.Is(err, ErrNoDigest):
			return err
		default:
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if asked == 0 {
		return fmt.Errorf("registries.configPath %s: no host of %s has the resolve capability, which reading a tag needs", r.c.opts.ConfigPath, r.repo.RegistryStr())
	}
	if len(errs) == 0 && notFound != nil {
		return notFound
	}
	return errors.Join(errs...)
}

// Manifest reads the manifest identifier (a tag or a digest) names from the
// first host that has it; see hostRepo.Manifest.
func (r *Repo) Manifest(ctx context.Context, identifier string, accept []types.MediaType, max int64) (*Manifest, error) {
	var m *Manifest
	err := r.each(ctx, !strings.Contains(identifier, ":"), func(h *hostRepo) (err error) {
		m, err = h.Manifest(ctx, identifier, accept, max)
		return err
	})
	return m, err
}

// Referrers returns the OCI referrers index of digest from the first host
// that answers; see hostRepo.Referrers.
func (r *Repo) Referrers(ctx context.Context, digest string, max int64) ([]byte, error) {
	var b []byte
	err := r.each(ctx, false, func(h *hostRepo) (err error) {
		b, err = h.Referrers(ctx, digest, max)
		return err
	})
	return b, err
}

// Blob reads the blob digest names from the first host that has it; see
// hostRepo.Blob.
func (r *Repo) Blob(ctx context.Context, digest string, max int64) ([]byte, error) {
	var b []byte
	err := r.each(ctx, false, func(h *hostRepo) (err error) {
		b, err = h.Blob(ctx, digest, max)
		return err
	})
	return b, err
}

// Head returns the digest of the manifest identifier names, from the first
// host that has it; see hostRepo.Head.
func (r *Repo) Head(ctx context.Context, identifier string, accept []types.MediaType) (string, error) {
	var d string
	err := r.each(ctx, !strings.Contains(identifier, ":"), func(h *hostRepo) (err error) {
		d, err = h.Head(ctx, identifier, accept)
		return err
	})
	return d, err
}

// rewrite sends a request for this endpoint to its API root (hosts.toml's
// path) with its headers.
func (e *Endpoint) rewrite(req *http.Request) *http.Request {
	root := e.Path != "" && e.Path != "/v2" && strings.HasPrefix(req.URL.Path, "/v2")
	if !root && len(e.Header) == 0 {
		return req
	}
	r := req.Clone(req.Context())
	if root {
		r.URL.Path = e.Path + strings.TrimPrefix(r.URL.Path, "/v2")
		r.URL.RawPath = ""
	}
	for k, vs := range e.Header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return r
}

// AccessError is a registry's refusal of access (401 or 403): which
// registry, and where the credentials sent came from. It never holds a
// credential.
type AccessError struct {
	Registry string
	Status   int
	// Source names the credential source that gave the credentials sent,
	// or says that none had any ("no credentials (asked: ...)").
	Source string
	Err    error
}

func (e *AccessError) Error() string {
	with := "with credentials from " + e.Source
	what := "check those credentials, or give the node credentials for " + e.Registry + " (registries.dockerConfig)"
	if strings.HasPrefix(e.Source, "no credentials") {
		with = "with " + e.Source
		what = "give the node credentials for " + e.Registry + " (registries.dockerConfig, or a credential provider)"
	}
	return fmt.Sprintf("registry %s refused access (%d) %s; %s: %v", e.Registry, e.Status, with, what, e.Err)
}

func (e *AccessError) Unwrap() error { return e.Err }

// accessError turns a 401 or 403 answer into an *AccessError; other errors
// are returned as they are.
func (c *Client) accessError(registry, source string, err error) error {
	var te *transport.Error
	var ae *AccessError
	if err == nil || errors.As(err, &ae) || !errors.As(err, &te) {
		return err
	}
	if te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden {
		return err
	}
	if source == "" {
		source = "no credentials"
	}
	return &AccessError{Registry: registry, Status: te.StatusCode, Source: source, Err: err}
}

// TLSError is a failed TLS handshake with a registry: the certificate was
// not trusted (or ours refused), with the CA files that were used.
type TLSError struct {
	Host string
	// CAFiles are the CA files hosts.toml names for the host; none: the
	// system pool.
	CAFiles    []string
	ConfigPath string
	Err        error
}

func (e *TLSError) Error() string {
	var ca string
	switch {
	case len(e.CAFiles) > 0:
		ca = "CA file(s) " + strings.Join(e.CAFiles, ", ") + " (from " + e.ConfigPath + ")"
	case e.ConfigPath != "":
		ca = "the system CA pool (no CA for " + e.Host + " in registries.configPath " + e.ConfigPath + ")"
	default:
		ca = "the system CA pool (registries.configPath is not set: set it to containerd's config_path, e.g. /etc/containerd/certs.d, to use the node's registry CAs)"
	}
	return fmt.Sprintf("TLS with registry %s failed, verifying with %s: %v", e.Host, ca, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// tlsError turns a certificate failure into a *TLSError.
func (c *Client) tlsError(host string, ep *Endpoint, err error) error {
	var (
		te  *TLSError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		cv  *tls.CertificateVerificationError
		ale tls.AlertError
	)
	if errors.As(err, &te) || !(errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &cv) || errors.As(err, &ale)) {
		return err
	}
	e := &TLSError{Host: host, ConfigPath: c.opts.ConfigPath, Err: err}
	if ep != nil {
		e.CAFiles = ep.CAFiles
	}
	return e
}
