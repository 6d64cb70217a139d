// Package regtest makes the private registries tests need on loopback: a
// test certificate authority (server and client certificates made with
// crypto/x509), and go-containerregistry's registry behind Docker
// distribution token authentication (a token server in the same process).
// It is for tests only.
package regtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// CA is a test certificate authority.
type CA struct {
	// CertPEM is the CA certificate, what a client's CA file holds.
	CertPEM []byte
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
}

// NewCA makes a CA valid for a day.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert: cert, key: key}, nil
}

// Pool returns a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue returns a certificate and its key in PEM, for a server (hosts: IP
// addresses or DNS names) or a client (no hosts).
func (ca *CA) Issue(commonName string, hosts ...string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(hosts) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// ServerConfig returns a TLS configuration serving a certificate for
// 127.0.0.1 and localhost.
func (ca *CA) ServerConfig() (*tls.Config, error) {
	c, k, err := ca.Issue("regtest server", "127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// Registry is go-containerregistry's registry on loopback, over TLS with a
// test CA's certificate, optionally behind token authentication.
type Registry struct {
	// Host is 127.0.0.1:port.
	Host string
	// Tokens counts the tokens the token server issued.
	Tokens atomic.Int64

	mu       sync.Mutex
	requests []string // see Requests
	srv      *http.Server
}

// Options shape a Registry.
type Options struct {
	// User and Password, when set, are the only credentials the token
	// server accepts: every /v2/ request needs a bearer token it issued.
	User, Password string
	// ClientCAs, when set, makes the server require a client certificate
	// issued by one of them.
	ClientCAs *x509.CertPool
	// Prefix serves the API under Prefix+"/v2/" instead of "/v2/" (for
	// hosts.toml's override_path); Requests shows paths without it.
	Prefix string
}

// Start serves a fresh registry over TLS with ca's certificate.
func Start(ca *CA, o Options) (*Registry, error) {
	cfg, err := ca.ServerConfig()
	if err != nil {
		return nil, err
	}
	if o.ClientCAs != nil {
		cfg.ClientCAs, cfg.ClientAuth = o.ClientCAs, tls.RequireAndVerifyClientCert
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: ln.Addr().String()}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true))
	tokens := &tokenServer{opts: o, issued: map[string]bool{}, count: &r.Tokens}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", tokens.serve)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.Path
		if o.Prefix != "" {
			rest, ok := strings.CutPrefix(p, o.Prefix)
			if !ok {
				http.NotFound(w, req)
				return
			}
			req.URL.Path = rest
		}
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path+" ns="+req.URL.Query().Get("ns"))
		r.mu.Unlock()
		if o.User != "" && !tokens.valid(req) {
			realm := "https://" + r.Host + "/token"
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="regtest"`, realm))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		reg.ServeHTTP(w, req)
	})
	r.srv = &http.Server{Handler: mux, TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go r.srv.ServeTLS(ln, "", "")
	return r, nil
}

// Requests returns the requests the registry got ("GET /v2/app/manifests/1
// ns=registry.invalid"), in order.
func (r *Registry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// Close stops the registry.
func (r *Registry) Close() error { return r.srv.Close() }

// tokenServer is a Docker distribution token server: GET /token with
// basic authentication returns a bearer token the registry accepts.
type tokenServer struct {
	opts   Options
	count  *atomic.Int64
	mu     sync.Mutex
	issued map[string]bool
}

func (t *tokenServer) serve(w http.ResponseWriter, req *http.Request) {
	user, pass, ok := req.BasicAuth()
	if !ok || user != t.opts.User || pass != t.opts.Password {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`)
		return
	}
	b := make([]byte, 16)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	t.mu.Lock()
	t.issued[tok] = true
	t.mu.Unlock()
	t.count.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": time.Now().UTC().Format(time.RFC3339)})
}

func (t *tokenServer) valid(req *http.Request) bool {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.issued[tok]
}

// DockerConfig returns a Docker config.json giving user:password for host.
func DockerConfig(host, user, password string) []byte {
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}}})
	return b
}
