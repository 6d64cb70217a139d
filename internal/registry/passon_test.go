package registry

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/internal/regtest"
)

// A mirror that refuses access (401 from a registry with a token server
// and no credentials for it; 403 on every read past an open ping) or cannot be reached at all
// passes each read on to the next host, as containerd's pulls do: tags and
// digests are read from the registry itself, after every mirror was tried
// in the file's order.
func TestReadPassesOnAfterARefusalOrAnUnreachableMirror(t *testing.T) {
	ca := newCA(t)
	locked, _ := testRegistry(t, ca, regtest.Options{User: "u", Password: "pw"}, false)
	cfg, err := ca.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	var forbidden atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v2/" {
			return // the ping is open: the refusal is the read's own
		}
		forbidden.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
	}))
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	refusing := srv.Listener.Addr().String()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := ln.Addr().String()
	ln.Close() // nothing listens there any more: connection refused
	upstream, digest := testRegistry(t, ca, regtest.Options{}, true)

	root := t.TempDir()
	toml := fmt.Sprintf(`server = "https://%s"
ca = "ca.crt"
`, upstream.Host)
	for _, m := range []string{locked.Host, refusing, unreachable} {
		toml += fmt.Sprintf(`[host."https://%s"]
  capabilities = ["pull", "resolve"]
  ca = "ca.crt"
`, m)
	}
	writeHosts(t, root, hostDir(upstream.Host), toml, map[string][]byte{"ca.crt": ca.CertPEM})
	repo, _ := name.NewRepository(upstream.Host + "/app")
	r, err := New(Options{ConfigPath: root, Keychain: Chain()}).Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatalf("Repo = %v; want the registry opened after the mirrors failed", err)
	}
	m, err := r.Manifest(t.Context(), "1", ImageMediaTypes, MaxManifestSize)
	if err != nil || m.Digest != digest {
		t.Fatalf("Manifest(tag) = %v, %v; want %s from the registry", m, err, digest)
	}
	if _, err := r.Manifest(t.Context(), digest, ImageMediaTypes, MaxManifestSize); err != nil {
		t.Fatalf("Manifest(digest) = %v; want it from the registry", err)
	}
	if len(locked.Requests()) == 0 || forbidden.Load() == 0 {
		t.Errorf("mirrors asked: 401 one %d times, 403 one %d times; want both asked first", len(locked.Requests()), forbidden.Load())
	}
}

// hostDir is containerd's directory name for host[:port] in a hosts.toml tree.
func hostDir(host string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return host
	}
	return h + "_" + port + "_"
}
