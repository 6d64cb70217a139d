package testbed

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an in-memory OCI registry (go-containerregistry's) on 127.0.0.1.
type Registry struct {
	Host string // 127.0.0.1:port
	srv  *http.Server
	ln   net.Listener
}

// StartRegistry serves a fresh registry on a free loopback port.
func StartRegistry() (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(ln)
	return &Registry{Host: ln.Addr().String(), srv: srv, ln: ln}, nil
}

// Ref returns "host/repo:tag" in this registry.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

// Push uploads img under ref ("repo:tag", in this registry) and returns its
// manifest digest.
func (r *Registry) Push(repoTag string, img v1.Image) (string, error) {
	ref, err := name.ParseReference(r.Ref(repoTag), name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	return d.String(), err
}

// PushIndex uploads a multi-platform index under repoTag and returns its digest.
func (r *Registry) PushIndex(repoTag string, idx v1.ImageIndex) (string, error) {
	ref, err := name.ParseReference(r.Ref(repoTag), name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := idx.Digest()
	return d.String(), err
}

// Close stops the registry.
func (r *Registry) Close() error { return r.srv.Close() }
