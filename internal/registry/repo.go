package registry

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/internal/registry/check"
)

// MaxManifestSize bounds an image manifest or index read from a registry:
// 4 MiB, as containerd and the distribution spec's recommended limit.
const MaxManifestSize = 4 << 20

// Errors about what a registry served (not about reaching it).
var (
	// ErrTooLarge marks an answer over the bound the caller read it with; it
	// was not read past the bound.
	ErrTooLarge = errors.New("registry answer too large")
	// ErrNoDigest marks a HEAD answer without a usable Docker-Content-Digest.
	ErrNoDigest = errors.New("registry did not say the manifest digest")
	// ErrWrongDigest marks content whose digest is not the one asked for.
	ErrWrongDigest = errors.New("registry served other content than the digest names")
)

// ImageMediaTypes are the manifest and index types an image reference may name.
var ImageMediaTypes = []types.MediaType{types.OCIManifestSchema1, types.OCIImageIndex, types.DockerManifestSchema2, types.DockerManifestList}

// emptyIndex is the referrers answer of a digest nothing refers to.
var emptyIndex = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)

// hostRepo is one repository at one host (the registry, or a mirror of
// it), after its handshake.
type hostRepo struct {
	c      *Client
	repo   name.Repository // at the host: the mirror's host for a mirror
	ns     string          // the registry a mirror stands for: ?ns=, as containerd
	rt     http.RoundTripper
	open   bool // no handshake: the registry asked no credentials at its ping
	client *http.Client
	// source names where the credentials came from, for refusals.
	source string
}

// Manifest is a manifest or index as a registry served it.
type Manifest struct {
	// Raw is the manifest's bytes.
	Raw []byte
	// Digest is the digest of Raw (checked against the reference when it
	// names a digest; sha256 of Raw when it names a tag).
	Digest string
	// MediaType is the Content-Type the registry answered with.
	MediaType types.MediaType
}

// Manifest reads the manifest identifier (a tag or a digest) names,
// accepting the media types accept, and at most max bytes: an answer that
// says, or turns out to be, longer is refused with ErrTooLarge without
// being read further. A missing manifest is a *transport.Error with
// StatusCode 404 (see IsNotFound).
func (r *hostRepo) Manifest(ctx context.Context, identifier string, accept []types.MediaType, max int64) (*Manifest, error) {
	byDigest := strings.Contains(identifier, ":")
	if byDigest {
		if err := check.Digest(identifier); err != nil {
			return nil, err
		}
	}
	resp, err := r.get(ctx, "manifests", identifier, accept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := r.check(resp, http.StatusOK); err != nil {
		return nil, err
	}
	what := r.repo.String() + ":" + identifier
	if byDigest {
		what = r.repo.String() + "@" + identifier
	}
	b, err := readBounded(resp, max, "manifest "+what)
	if err != nil {
		return nil, err
	}
	alg := "sha256"
	if byDigest {
		alg, _, _ = strings.Cut(identifier, ":")
	}
	d := digestOf(alg, b)
	if byDigest && d != identifier {
		return nil, fmt.Errorf("%w: manifest %s has digest %s", ErrWrongDigest, what, d)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return &Manifest{Raw: b, Digest: d, MediaType: types.MediaType(mt)}, nil
}

// Referrers returns the OCI referrers index of digest, at most max bytes:
// the referrers API's answer or, where the registry has no referrers API,
// the index under the sha256-<hex> fallback tag (an empty index when that
// tag does not exist). Oversized answers are refused with ErrTooLarge
// without being read further.
func (r *hostRepo) Referrers(ctx context.Context, digest string, max int64) ([]byte, error) {
	if err := check.Digest(digest); err != nil {
		return nil, err
	}
	resp, err := r.get(ctx, "referrers", digest, []types.MediaType{types.OCIImageIndex})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := r.check(resp, http.StatusOK, http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable); err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode == http.StatusOK && mt == string(types.OCIImageIndex) {
		return readBounded(resp, max, "referrers of "+r.repo.String()+"@"+digest)
	}
	// No referrers API (the distribution spec forbids a 404 from one that
	// exists): the tag schema. The answer above is not read.
	m, err := r.Manifest(ctx, strings.Replace(digest, ":", "-", 1), []types.MediaType{types.OCIImageIndex}, max)
	if IsNotFound(err) {
		return emptyIndex, nil
	}
	if err != nil {
		return nil, err
	}
	return m.Raw, nil
}

// Blob reads the blob digest names, at most max bytes, and checks that its
// content has that digest. Oversized blobs are refused with ErrTooLarge
// without being read further; a missing blob is a 404 *transport.Error.
func (r *hostRepo) Blob(ctx context.Context, digest string, max int64) ([]byte, error) {
	if err := check.Digest(digest); err != nil {
		return nil, err
	}
	resp, err := r.get(ctx, "blobs", digest, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := r.check(resp, http.StatusOK); err != nil {
		return nil, err
	}
	what := "blob " + r.repo.String() + "@" + digest
	b, err := readBounded(resp, max, what)
	if err != nil {
		return nil, err
	}
	alg, _, _ := strings.Cut(digest, ":")
	if d := digestOf(alg, b); d != digest {
		return nil, fmt.Errorf("%w: %s has digest %s", ErrWrongDigest, what, d)
	}
	return b, nil
}

func (r *hostRepo) get(ctx context.Context, kind, identifier string, accept []types.MediaType) (*http.Response, error) {
	return r.do(ctx, http.MethodGet, kind, identifier, accept)
}

func (r *hostRepo) do(ctx context.Context, method, kind, identifier string, accept []types.MediaType) (*http.Response, error) {
	// https here; the Client turns it into http for a registry that speaks it.
	u := url.URL{Scheme: "https", Host: r.repo.RegistryStr(), Path: "/v2/" + r.repo.RepositoryStr() + "/" + kind + "/" + identifier}
	if r.ns != "" {
		u.RawQuery = url.Values{"ns": {r.ns}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	setAccept(req, accept)
	resp, err := r.client.Do(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && r.open {
		// The registry wants credentials for this repository after all:
		// shake hands and ask again.
		resp.Body.Close()
		r.c.closeHost(r.repo.RegistryStr())
		hr, err := r.c.handshake(ctx, r.repo, false)
		if err != nil {
			return nil, err
		}
		hr.ns = r.ns
		return hr.do(ctx, method, kind, identifier, accept)
	}
	return resp, err
}

// readBounded reads an answer's body, refusing it unread when its
// Content-Length is over max and stopping at max+1 bytes otherwise.
func readBounded(resp *http.Response, max int64, what string) ([]byte, error) {
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d read", ErrTooLarge, what, resp.ContentLength, max)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s is more than the %d bytes read", ErrTooLarge, what, max)
	}
	return b, nil
}

func digestOf(alg string, b []byte) string {
	var h hash.Hash = sha256.New()
	if alg == "sha512" {
		h = sha512.New()
	}
	h.Write(b)
	return alg + ":" + hex.EncodeToString(h.Sum(nil))
}

// IsNotFound reports whether err is a registry's 404 answer.
func IsNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// ParseReference parses an image reference (tag or digest), saying what
// form is expected when it is not one.
func ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w; use registry/repository:tag or registry/repository@sha256:<hex>", s, err)
	}
	return ref, nil
}

// Head returns the digest of the manifest identifier names, from a HEAD
// request (no body is read), for polling whether a tag moved. It is an
// ErrNoDigest when the registry does not say (no Docker-Content-Digest
// header); read the manifest then.
func (r *hostRepo) Head(ctx context.Context, identifier string, accept []types.MediaType) (string, error) {
	resp, err := r.do(ctx, http.MethodHead, "manifests", identifier, accept)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := r.check(resp, http.StatusOK); err != nil {
		return "", err
	}
	d := resp.Header.Get("Docker-Content-Digest")
	if err := check.Digest(d); err != nil {
		return "", fmt.Errorf("%w: HEAD %s:%s: Docker-Content-Digest: %w", ErrNoDigest, r.repo, identifier, err)
	}
	return d, nil
}

func setAccept(req *http.Request, accept []types.MediaType) {
	if len(accept) == 0 {
		return
	}
	s := make([]string, len(accept))
	for i, mt := range accept {
		s[i] = string(mt)
	}
	req.Header.Set("Accept", strings.Join(s, ","))
}

// check is transport.CheckError, with a refusal of access (401, 403) said
// as one: which registry, and with which credentials.
func (r *hostRepo) check(resp *http.Response, codes ...int) error {
	err := transport.CheckError(resp, codes...)
	return r.c.accessError(r.repo.RegistryStr(), r.source, err)
}
