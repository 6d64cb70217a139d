package testbed

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// StartRegistryWith serves a fresh registry on a free loopback port behind
// wrap (e.g. an authentication check).
func StartRegistryWith(wrap func(http.Handler) http.Handler) (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: wrap(registry.New(registry.Logger(log.New(io.Discard, "", 0))))}
	go srv.Serve(ln)
	return &Registry{Host: ln.Addr().String(), srv: srv, ln: ln}, nil
}

// BasicAuth serves only requests with Basic auth of one of the users
// (user -> password); the rest get 401 with a Basic challenge.
func BasicAuth(users map[string]string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if want, known := users[u]; !ok || !known || p != want {
				w.Header().Set("WWW-Authenticate", `Basic realm="testbed"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// PushAs is Push with credentials.
func (r *Registry) PushAs(repoTag string, img v1.Image, auth authn.Authenticator) (string, error) {
	ref, err := name.ParseReference(r.Ref(repoTag), name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	return d.String(), err
}

// AllowHTTPRegistry lets containerd pull from host (127.0.0.1:port) over
// plain HTTP, as it does the testbed's own registry.
func (c *Containerd) AllowHTTPRegistry(host string) error {
	dir := filepath.Join(c.Dir, "certs.d", host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	toml := fmt.Sprintf("server = \"http://%[1]s\"\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host)
	return os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644)
}

// PullAs pulls ref through the CRI with a username and password (crictl
// --creds) and returns its image ID.
func (c *Containerd) PullAs(ref, user, password string) (string, error) {
	out, err := c.Crictl("pull", "--creds", user+":"+password, ref)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(out, "Image is up to date for "), nil
}
