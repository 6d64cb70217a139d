package registry

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/nettest"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// okTransport answers every request with 200 and records the URLs.
type okTransport struct {
	mu   sync.Mutex
	urls []string
}

func (t *okTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.urls = append(t.urls, r.URL.String())
	t.mu.Unlock()
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
}

func TestPlainHTTPRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		ok   map[string]bool
	}{
		{"default", Options{}, map[string]bool{
			"http://127.0.0.1:5000/v2/": true, "http://localhost:5000/v2/": true, "http://[::1]:5000/v2/": true,
			"https://10.0.0.1/v2/": true, "http://10.0.0.1:5000/v2/": false, "http://registry.local/v2/": false,
			"http://192.168.1.2/v2/": false,
		}},
		{"listed host", Options{HTTPHosts: []string{"registry.local:5000"}}, map[string]bool{
			"http://registry.local:5000/v2/": true, "http://registry.local/v2/": false, "http://10.0.0.1:5000/v2/": false,
		}},
		{"--allow-http-registry", Options{AllowHTTP: true}, map[string]bool{
			"http://10.0.0.1:5000/v2/": true, "http://registry.example/v2/": true,
		}},
		// cosign keeps the two apart: skipping TLS verification is not plain HTTP.
		{"--allow-insecure-registry", Options{SkipTLSVerify: true}, map[string]bool{
			"http://10.0.0.1:5000/v2/": false, "https://10.0.0.1:5000/v2/": true,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Transport = &okTransport{}
			c := New(tc.opts)
			for url, ok := range tc.ok {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				_, err := c.rt.RoundTrip(req)
				if (err == nil) != ok {
					t.Errorf("RoundTrip(%s) = %v; want allowed %v", url, err, ok)
				}
				if err != nil && !strings.Contains(err.Error(), "--allow-http-registry") {
					t.Errorf("RoundTrip(%s) = %v; want it to say how to allow HTTP", url, err)
				}
			}
		})
	}
}

func TestSkipTLSVerifyOnlyWhenAsked(t *testing.T) {
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	repo, err := name.NewRepository(host + "/app")
	if err != nil {
		t.Fatal(err)
	}
	// A loopback registry with a certificate no one signed: no silent
	// fallback to plain HTTP, the certificate error is the answer.
	if _, err := New(Options{}).Repo(t.Context(), repo, false); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Repo(self-signed TLS) = %v; want a certificate error", err)
	}
	c := New(Options{SkipTLSVerify: true})
	r, err := c.Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatalf("Repo(self-signed TLS, SkipTLSVerify) = %v", err)
	}
	if _, err := r.Manifest(t.Context(), "v1", ImageMediaTypes, MaxManifestSize); !IsNotFound(err) {
		t.Fatalf("Manifest(missing tag) over TLS = %v; want 404", err)
	}
	if got := c.scheme(host); got != "https" {
		t.Errorf("learned scheme %q; want https", got)
	}
}

// countingListener counts the connections that began with a TLS handshake
// record, on a plain-HTTP server.
type countingListener struct {
	net.Listener
	tls atomic.Int32
}

// Accept does not read: a peek here would hold up the accept loop behind
// a connection the client dialed but has not written on yet (the HTTP
// transport dials ahead and may leave such a connection idle), and the
// next connections would time out. The first byte is looked at on the
// connection's first read instead.
func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &peekedConn{Conn: c, r: bufio.NewReader(c), l: l}, nil
}

type peekedConn struct {
	net.Conn
	r    *bufio.Reader
	l    *countingListener
	once sync.Once
}

func (c *peekedConn) Read(b []byte) (int, error) {
	c.once.Do(func() {
		if p, err := c.r.Peek(1); err == nil && p[0] == 0x16 { // a TLS ClientHello
			c.l.tls.Add(1)
		}
	})
	return c.r.Read(b)
}

// plainRegistry serves go-containerregistry's registry over plain HTTP on
// loopback, counting TLS attempts and pings (GET /v2/).
func plainRegistry(t *testing.T) (host string, l *countingListener, pings *atomic.Int32) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l = &countingListener{Listener: inner}
	pings = &atomic.Int32{}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pings.Add(1)
		}
		reg.ServeHTTP(w, r)
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return inner.Addr().String(), l, pings
}

func TestSchemeAndHandshakeOncePerRegistry(t *testing.T) {
	host, l, pings := plainRegistry(t)
	img, _ := random.Image(256, 1)
	ref, _ := name.ParseReference(host + "/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	before, pingsBefore := l.tls.Load(), pings.Load()
	c := New(Options{})
	for range 5 {
		r, err := c.Repo(t.Context(), ref.Context(), false)
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Manifest(t.Context(), "v1", ImageMediaTypes, MaxManifestSize)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := img.Digest(); m.Digest != d.String() {
			t.Fatalf("Manifest digest %s; want %s", m.Digest, d)
		}
		if _, err := r.Referrers(t.Context(), m.Digest, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := name.NewRepository(host + "/other")
	if _, err := c.Repo(t.Context(), other, false); err != nil {
		t.Fatal(err)
	}
	if n := l.tls.Load() - before; n != 1 {
		t.Errorf("%d TLS attempts against a plain-HTTP registry; want 1 (the scheme is learned once)", n)
	}
	// The registry asks no credentials: one ping for the registry, not one
	// per repository.
	if n := pings.Load() - pingsBefore; n != 1 {
		t.Errorf("%d pings for 5 rounds on one repository and one on another; want 1", n)
	}
	// Writes shake hands for their scope, once.
	for range 2 {
		if _, err := c.Repo(t.Context(), ref.Context(), true); err != nil {
			t.Fatal(err)
		}
	}
	if n := pings.Load() - pingsBefore; n != 2 {
		t.Errorf("%d pings after two write accesses; want 2", n)
	}
}

// basicAuthRegistry answers its ping 200 but asks Basic credentials for
// every repository, as some registries do; it counts pings.
func basicAuthRegistry(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	pings := &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pings.Add(1)
			if _, _, ok := r.BasicAuth(); !ok && pings.Load() > 1 {
				// The handshake's ping: ask, so that it sends credentials.
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
			}
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pass" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Write([]byte(`{"schemaVersion":2}`))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), pings
}

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

func TestCredentialsAskedAfterAnOpenPing(t *testing.T) {
	host, pings := basicAuthRegistry(t)
	repo, _ := name.NewRepository(host + "/private")
	// With credentials: the handshake at once, and they are sent.
	c := New(Options{Keychain: staticKeychain{&authn.Basic{Username: "user", Password: "pass"}}})
	r, err := c.Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Manifest(t.Context(), "v1", nil, MaxManifestSize); err != nil {
		t.Fatalf("Manifest with credentials = %v", err)
	}
	// Without: the open ping (200), the 401, one handshake (its ping), the
	// 401 again as the answer; not a loop.
	pings.Store(0)
	r, err = New(Options{Keychain: staticKeychain{authn.Anonymous}}).Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	err = within(t, func() error { _, err := r.Manifest(t.Context(), "v1", nil, MaxManifestSize); return err })
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Manifest without credentials = %v; want the registry's 401", err)
	}
	if n := pings.Load(); n != 2 {
		t.Errorf("%d pings; want 2 (the open ping, then the handshake's)", n)
	}
}

// within fails the test when f has not returned after a generous bound: the
// client's own timeouts, not the test's, must end it.
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the call hung: no timeout ended it")
		return nil
	}
}

func TestSilentRegistryTimesOut(t *testing.T) {
	host := nettest.SilentListener(t)
	repo, _ := name.NewRepository(host + "/app")
	c := New(Options{DialTimeout: 200 * time.Millisecond, ResponseTimeout: 200 * time.Millisecond, CallTimeout: time.Second})
	err := within(t, func() error {
		_, err := c.Repo(context.Background(), repo, false)
		return err
	})
	if err == nil {
		t.Fatal("Repo(silent registry) succeeded")
	}
}

func TestSilentAnswerBodyTimesOut(t *testing.T) {
	// Answers the headers, then never the body: only the call deadline ends it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	repo, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/app")
	c := New(Options{CallTimeout: 300 * time.Millisecond})
	r, err := c.Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	err = within(t, func() error {
		_, err := r.Manifest(context.Background(), "v1", ImageMediaTypes, MaxManifestSize)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Manifest(stalled body) = %v; want the call deadline", err)
	}
}

// hostile serves answers of size bytes for every manifest, blob and referrers
// request, with or without Content-Length, and counts what it wrote.
type hostile struct {
	size    int64
	length  bool
	written atomic.Int64
}

func (h *hostile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		return
	}
	ct := "application/vnd.oci.image.manifest.v1+json"
	if strings.Contains(r.URL.Path, "/referrers/") {
		ct = "application/vnd.oci.image.index.v1+json"
	}
	w.Header().Set("Content-Type", ct)
	if h.length {
		w.Header().Set("Content-Length", itoa(h.size))
	}
	chunk := make([]byte, 32<<10)
	for n := int64(0); n < h.size; n += int64(len(chunk)) {
		m, err := w.Write(chunk)
		h.written.Add(int64(m))
		if err != nil {
			return
		}
	}
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestAnswersBoundedWhileRead(t *testing.T) {
	const size = 100 << 20
	for _, length := range []bool{true, false} {
		h := &hostile{size: size, length: length}
		srv := httptest.NewServer(h)
		repo, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/app")
		r, err := New(Options{}).Repo(t.Context(), repo, false)
		if err != nil {
			t.Fatal(err)
		}
		digest := "sha256:" + strings.Repeat("ab", 32)
		for what, call := range map[string]func() error{
			"manifest":  func() error { _, err := r.Manifest(t.Context(), "v1", nil, MaxManifestSize); return err },
			"referrers": func() error { _, err := r.Referrers(t.Context(), digest, 1<<20); return err },
			"blob":      func() error { _, err := r.Blob(t.Context(), digest, 64<<10); return err },
		} {
			if err := call(); !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s of a %d-byte answer (Content-Length %v) = %v; want ErrTooLarge", what, size, length, err)
			}
		}
		srv.Close()
		// What the server managed to write before the client hung up is
		// bounded by socket buffers, far from the 3 x 100 MiB offered.
		if w := h.written.Load(); w > 3*(16<<20) {
			t.Errorf("Content-Length %v: the server wrote %d bytes; the client read far past its bound", length, w)
		}
	}
}

func TestContentChecked(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Write([]byte(`{"schemaVersion":2}`))
	}))
	t.Cleanup(srv.Close)
	repo, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/app")
	r, err := New(Options{}).Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	d := "sha256:" + strings.Repeat("ab", 32)
	if _, err := r.Manifest(t.Context(), d, nil, MaxManifestSize); !errors.Is(err, ErrWrongDigest) {
		t.Errorf("Manifest(by digest, other content) = %v; want ErrWrongDigest", err)
	}
	if _, err := r.Blob(t.Context(), d, 1<<10); !errors.Is(err, ErrWrongDigest) {
		t.Errorf("Blob(other content) = %v; want ErrWrongDigest", err)
	}
	if _, err := r.Blob(t.Context(), "sha256:../../etc/passwd", 1<<10); err == nil {
		t.Error("Blob(path in digest) = nil error")
	}
	// A tag is digested as served.
	m, err := r.Manifest(t.Context(), "v1", nil, MaxManifestSize)
	if err != nil || !strings.HasPrefix(m.Digest, "sha256:") {
		t.Errorf("Manifest(tag) = %+v, %v", m, err)
	}
}

func TestReferrers(t *testing.T) {
	for _, api := range []bool{true, false} {
		srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(api)))
		repo, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/app")
		r, err := New(Options{}).Repo(t.Context(), repo, false)
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Referrers(t.Context(), "sha256:"+strings.Repeat("ab", 32), 1<<20)
		if err != nil || !strings.Contains(string(b), `"manifests"`) {
			t.Errorf("Referrers(nothing refers, API %v) = %s, %v; want an empty index", api, b, err)
		}
		srv.Close()
	}
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	repo, _ := name.NewRepository(strings.TrimPrefix(failing.URL, "http://") + "/app")
	r, err := New(Options{}).Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Referrers(t.Context(), "sha256:"+strings.Repeat("ab", 32), 1<<20); err == nil || IsNotFound(err) {
		t.Errorf("Referrers(HTTP 500) = %v; want an error that is not 404", err)
	}
}

func TestTransportBounds(t *testing.T) {
	tr := newTransport(Options{DialTimeout: DefaultDialTimeout, ResponseTimeout: DefaultResponseTimeout})
	if tr.ResponseHeaderTimeout <= 0 || tr.TLSHandshakeTimeout <= 0 || tr.IdleConnTimeout <= 0 || tr.IdleConnTimeout > time.Minute {
		t.Errorf("timeouts: response %v, TLS %v, idle %v; want all set, idle at most a minute", tr.ResponseHeaderTimeout, tr.TLSHandshakeTimeout, tr.IdleConnTimeout)
	}
	if tr.MaxIdleConnsPerHost <= 0 || tr.MaxIdleConnsPerHost > 4 || tr.MaxIdleConns <= 0 || tr.MaxConnsPerHost <= 0 {
		t.Errorf("pool: %d idle per host, %d idle, %d per host; want small and bounded", tr.MaxIdleConnsPerHost, tr.MaxIdleConns, tr.MaxConnsPerHost)
	}
	if tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("TLS verification skipped by default")
	}
}

func TestRedirects(t *testing.T) {
	via := func(u string) []*http.Request {
		r, _ := http.NewRequest(http.MethodGet, u, nil)
		return []*http.Request{r}
	}
	for to, ok := range map[string]bool{
		"https://registry.example/v2/x": true, "https://storage.example/blob": true,
		"http://169.254.169.254/latest/meta-data": false, "http://10.0.0.1/x": false, "http://127.0.0.1/x": false,
	} {
		req, _ := http.NewRequest(http.MethodGet, to, nil)
		if err := checkRedirect(req, via("https://registry.example/v2/app/blobs/x")); (err == nil) != ok {
			t.Errorf("redirect to %s = %v; want allowed %v", to, err, ok)
		}
	}
}

// flakyTransport fails every nth plain-HTTP request as a reset connection
// would, and passes the others on.
type flakyTransport struct {
	next http.RoundTripper
	n, i atomic.Int64
}

var errInjected = errors.New("injected: connection reset")

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && f.i.Add(1)%f.n.Load() == 0 {
		return nil, errInjected
	}
	return f.next.RoundTrip(r)
}

// Boot verification reads a plain-HTTP registry from 8 workers at once, and
// a failed exchange makes the client learn the scheme again. A request must
// decide its scheme once: one that went out over HTTPS because the scheme
// was not known falls back to HTTP, even when another request learned it
// meanwhile; none fails with "server gave HTTP response to HTTPS client".
func TestConcurrentRequestsWhileTheSchemeIsLearnedAgain(t *testing.T) {
	host, _, _ := plainRegistry(t)
	img, _ := random.Image(256, 1)
	ref, _ := name.ParseReference(host + "/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	ft := &flakyTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	ft.n.Store(7)
	c := New(Options{Transport: ft})
	r, err := c.Repo(t.Context(), ref.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var injected, wrong atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				_, err := r.Manifest(t.Context(), "v1", ImageMediaTypes, MaxManifestSize)
				switch {
				case err == nil:
				case errors.Is(err, errInjected) || strings.Contains(err.Error(), errInjected.Error()):
					injected.Add(1)
				default:
					if wrong.Add(1) <= 3 {
						t.Errorf("a read failed for another reason than the injected reset: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if injected.Load() == 0 {
		t.Fatal("no reset was injected: the test proves nothing")
	}
	if n := wrong.Load(); n > 0 {
		t.Errorf("%d of 1,600 reads failed over the wrong scheme", n)
	}
}
