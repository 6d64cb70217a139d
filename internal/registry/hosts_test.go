package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/regtest"
)

// testRegistry is a TLS registry of the test CA ca, with image pushed as
// app:1 when push is set; it returns the registry and the image's digest.
func testRegistry(t testing.TB, ca *regtest.CA, o regtest.Options, push bool) (*regtest.Registry, string) {
	t.Helper()
	r, err := regtest.Start(ca, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if !push {
		return r, ""
	}
	if testImage == nil {
		if testImage, err = random.Image(256, 1); err != nil {
			t.Fatal(err)
		}
	}
	img := testImage
	ref, _ := name.ParseReference(r.Host + "/app:1")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
	opts := []remote.Option{remote.WithTransport(tr)}
	if o.User != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: o.User, Password: o.Password}))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return r, d.String()
}

// testImage is the one image every test registry holds.
var testImage v1.Image

// writeHosts writes root/<dir>/hosts.toml and returns root.
func writeHosts(t testing.TB, root, dir, toml string, files map[string][]byte) {
	t.Helper()
	d := filepath.Join(root, dir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(d, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newCA(t testing.TB) *regtest.CA {
	t.Helper()
	ca, err := regtest.NewCA("nri-csig test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// The registry's own CA file from hosts.toml is what makes its certificate
// trusted; without it the failure names the CA that was used, and with the
// wrong one it names that file.
func TestHostsTOMLCA(t *testing.T) {
	ca := newCA(t)
	reg, digest := testRegistry(t, ca, regtest.Options{}, true)
	repo, _ := name.NewRepository(reg.Host + "/app")

	_, err := New(Options{}).Repo(t.Context(), repo, false)
	var te *TLSError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "system CA pool") || !strings.Contains(err.Error(), "registries.configPath is not set") {
		t.Fatalf("without configPath: %v; want a TLSError naming the system pool and registries.configPath", err)
	}

	root := t.TempDir()
	dir := strings.Replace(reg.Host, ":", "_", 1) + "_" // containerd's host_port_ directory
	writeHosts(t, root, dir, fmt.Sprintf("server = \"https://%s\"\n[host.\"https://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n", reg.Host, reg.Host),
		map[string][]byte{"ca.crt": ca.CertPEM})
	r, err := New(Options{ConfigPath: root}).Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Manifest(t.Context(), "1", ImageMediaTypes, MaxManifestSize)
	if err != nil || m.Digest != digest {
		t.Fatalf("Manifest = %v, %v; want %s", m, err, digest)
	}

	// skip_verify, as containerd: any certificate, for this host only.
	writeHosts(t, root, dir, fmt.Sprintf("server = \"https://%s\"\nskip_verify = true\n", reg.Host), nil)
	if _, err := New(Options{ConfigPath: root}).Repo(t.Context(), repo, false); err != nil {
		t.Fatalf("skip_verify = true: %v", err)
	}

	other := newCA(t)
	writeHosts(t, root, dir, fmt.Sprintf("server = \"https://%s\"\nca = \"other.crt\"\n", reg.Host), map[string][]byte{"other.crt": other.CertPEM})
	_, err = New(Options{ConfigPath: root}).Repo(t.Context(), repo, false)
	want := filepath.Join(root, dir, "other.crt")
	if !errors.As(err, &te) || !slices.Equal(te.CAFiles, []string{want}) || !strings.Contains(err.Error(), want) {
		t.Fatalf("with another CA: %v; want a TLSError naming %s", err, want)
	}
}

// A client certificate from hosts.toml is presented to a registry that
// requires one.
func TestHostsTOMLClientCertificate(t *testing.T) {
	ca := newCA(t)
	reg, _ := testRegistry(t, ca, regtest.Options{ClientCAs: ca.Pool()}, false)
	cert, key, err := ca.Issue("node")
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := name.NewRepository(reg.Host + "/app")
	root := t.TempDir()
	dir := strings.Replace(reg.Host, ":", "_", 1) + "_"
	writeHosts(t, root, dir, fmt.Sprintf("server = \"https://%s\"\nca = \"ca.crt\"\n", reg.Host), map[string][]byte{"ca.crt": ca.CertPEM})
	if _, err := New(Options{ConfigPath: root}).Repo(t.Context(), repo, false); err == nil {
		t.Fatal("no client certificate: the registry answered; want a refusal")
	}
	writeHosts(t, root, dir, fmt.Sprintf("server = \"https://%s\"\nca = \"ca.crt\"\nclient = [[\"node.crt\", \"node.key\"]]\n", reg.Host),
		map[string][]byte{"ca.crt": ca.CertPEM, "node.crt": cert, "node.key": key})
	r, err := New(Options{ConfigPath: root}).Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Manifest(t.Context(), "1", ImageMediaTypes, MaxManifestSize); !IsNotFound(err) {
		t.Fatalf("Manifest = %v; want the registry's 404 (reached with the client certificate)", err)
	}
}

// Mirrors are asked first, in hosts.toml's order, with ?ns=<registry>; a
// mirror without the manifest passes the read on; a host without the
// resolve capability is not asked for tags; the upstream name is never
// resolved when a mirror has what is asked.
func TestHostsTOMLMirrorOrder(t *testing.T) {
	ca := newCA(t)
	empty, _ := testRegistry(t, ca, regtest.Options{}, false)
	pullOnly, _ := testRegistry(t, ca, regtest.Options{}, true)
	full, digest := testRegistry(t, ca, regtest.Options{}, true)
	root := t.TempDir()
	writeHosts(t, root, "registry.invalid", fmt.Sprintf(`server = "https://registry.invalid"
[host."https://%s"]
  capabilities = ["pull", "resolve"]
  ca = "ca.crt"
[host."https://%s"]
  capabilities = ["pull"]
  ca = "ca.crt"
[host."https://%s"]
  capabilities = ["pull", "resolve"]
  ca = "ca.crt"
`, empty.Host, pullOnly.Host, full.Host), map[string][]byte{"ca.crt": ca.CertPEM})
	repo, _ := name.NewRepository("registry.invalid/app")
	r, err := New(Options{ConfigPath: root}).Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	setup := len(pullOnly.Requests()) // the push
	m, err := r.Manifest(t.Context(), "1", ImageMediaTypes, MaxManifestSize)
	if err != nil || m.Digest != digest {
		t.Fatalf("Manifest(tag) = %v, %v; want %s from the third host", m, err, digest)
	}
	if got := empty.Requests(); !slices.Contains(got, "GET /v2/app/manifests/1 ns=registry.invalid") {
		t.Errorf("first mirror got %v; want the tag asked first, with ns=registry.invalid", got)
	}
	for _, q := range pullOnly.Requests()[setup:] {
		if strings.Contains(q, "/manifests/1 ") {
			t.Errorf("the pull-only mirror was asked for a tag: %s", q)
		}
	}
	// By digest, the pull-only mirror (second) has it: the third is not asked.
	before := len(full.Requests())
	if _, err := r.Manifest(t.Context(), digest, ImageMediaTypes, MaxManifestSize); err != nil {
		t.Fatal(err)
	}
	if got := full.Requests()[before:]; len(got) != 0 {
		t.Errorf("the third host was asked %v; the pull-only mirror had the digest", got)
	}

	// Nothing anywhere: the upstream (unresolvable) is the last asked, and
	// its failure is what is said (a 404 from mirrors is not "not signed"
	// while the registry itself could not be asked).
	_, err = r.Manifest(t.Context(), "2", ImageMediaTypes, MaxManifestSize)
	if err == nil || IsNotFound(err) || !strings.Contains(err.Error(), "registry.invalid") {
		t.Fatalf("Manifest(missing) = %v; want the upstream's failure", err)
	}
}

// override_path: the host's path is the API root, as is.
func TestHostsTOMLOverridePath(t *testing.T) {
	ca := newCA(t)
	_, digest := testRegistry(t, ca, regtest.Options{}, true)
	prefixed, err := regtest.Start(ca, regtest.Options{Prefix: "/proxy"})
	if err != nil {
		t.Fatal(err)
	}
	defer prefixed.Close()
	root := t.TempDir()
	writeHosts(t, root, "registry.invalid", fmt.Sprintf(`server = "https://registry.invalid"
[host."https://%s/proxy/v2"]
  capabilities = ["pull", "resolve"]
  override_path = true
  ca = "ca.crt"
`, prefixed.Host), map[string][]byte{"ca.crt": ca.CertPEM})
	repo, _ := name.NewRepository("registry.invalid/app")
	r, err := New(Options{ConfigPath: root}).Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Manifest(t.Context(), digest, ImageMediaTypes, MaxManifestSize)
	_ = err // the prefixed registry is empty: what matters is where it was asked
	if got := prefixed.Requests(); !slices.Contains(got, "GET /v2/app/manifests/"+digest+" ns=registry.invalid") {
		t.Errorf("prefixed host got %v; want /proxy/v2/app/manifests/<digest> (the server strips /proxy)", got)
	}
}

// A refusal of access names the registry and the credential source tried,
// never the secret; the right credentials from a docker config file pass
// the token server.
func TestAccessRefusalNamesTheSource(t *testing.T) {
	ca := newCA(t)
	reg, digest := testRegistry(t, ca, regtest.Options{User: "ci", Password: "s3cret-pass"}, true)
	root := t.TempDir()
	dir := strings.Replace(reg.Host, ":", "_", 1) + "_"
	writeHosts(t, root, dir, fmt.Sprintf("server = \"https://%s\"\nca = \"ca.crt\"\n", reg.Host), map[string][]byte{"ca.crt": ca.CertPEM})
	repo, _ := name.NewRepository(reg.Host + "/app")
	cfgDir := t.TempDir()
	wrong := filepath.Join(cfgDir, "wrong.json")
	os.WriteFile(wrong, regtest.DockerConfig(reg.Host, "ci", "not-the-password"), 0o600)
	right := filepath.Join(cfgDir, "right.json")
	os.WriteFile(right, regtest.DockerConfig(reg.Host, "ci", "s3cret-pass"), 0o600)
	missing := filepath.Join(cfgDir, "missing.json")

	_, err := New(Options{ConfigPath: root, Keychain: Chain(DockerConfig(missing))}).Repo(t.Context(), repo, false)
	var ae *AccessError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "registry "+reg.Host+" refused access (401) with no credentials (asked: docker config "+missing+")") {
		t.Fatalf("no credentials: %v; want an AccessError naming the registry and the source asked", err)
	}
	_, err = New(Options{ConfigPath: root, Keychain: Chain(DockerConfig(wrong), DefaultSource)}).Repo(t.Context(), repo, false)
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "with credentials from docker config "+wrong) {
		t.Fatalf("wrong credentials: %v; want an AccessError naming docker config %s", err, wrong)
	}
	if strings.Contains(err.Error(), "not-the-password") || strings.Contains(err.Error(), "Y2k6") {
		t.Fatalf("the refusal shows the secret: %v", err)
	}
	r, err := New(Options{ConfigPath: root, Keychain: Chain(DockerConfig(missing), DockerConfig(right))}).Repo(t.Context(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := r.Manifest(t.Context(), "1", ImageMediaTypes, MaxManifestSize); err != nil || m.Digest != digest {
		t.Fatalf("Manifest = %v, %v; want %s", m, err, digest)
	}
}

type staticSource struct {
	auth authn.Authenticator
	err  error
	n    *int
}

func (s staticSource) Resolve(authn.Resource) (authn.Authenticator, error) {
	*s.n++
	return s.auth, s.err
}

// The chain asks its sources in order, stops at the first with
// credentials, names it, and stops (naming it) at one that fails.
func TestChain(t *testing.T) {
	reg, _ := name.NewRegistry("registry.example")
	var a, b, c int
	anon := staticSource{auth: authn.Anonymous, n: &a}
	basic := staticSource{auth: &authn.Basic{Username: "u", Password: "p"}, n: &b}
	broken := staticSource{err: errors.New("helper crashed"), n: &c}

	auth, src, err := Chain(NamedKeychain{"first", anon}, NamedKeychain{"second", basic}, NamedKeychain{"third", broken}).ResolveNamed(t.Context(), reg)
	if err != nil || src != "second" || auth == authn.Anonymous || a != 1 || b != 1 || c != 0 {
		t.Fatalf("ResolveNamed = %v, %q, %v (asked %d %d %d); want second's credentials, third not asked", auth, src, err, a, b, c)
	}
	_, src, err = Chain(NamedKeychain{"first", anon}, NamedKeychain{"broken", broken}, NamedKeychain{"second", basic}).ResolveNamed(t.Context(), reg)
	if err == nil || src != "broken" || !strings.Contains(err.Error(), "from broken") {
		t.Fatalf("ResolveNamed = %q, %v; want broken's failure, named", src, err)
	}
	auth, src, err = Chain(NamedKeychain{"first", anon}, NamedKeychain{"empty", nil}).ResolveNamed(t.Context(), reg)
	if err != nil || auth != authn.Anonymous || src != "no credentials (asked: first)" {
		t.Fatalf("ResolveNamed = %v, %q, %v; want anonymous, naming the one source", auth, src, err)
	}
}

// A docker config file is read when it changes; a malformed one is an
// error that names the file and never quotes it.
func TestDockerConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	kc := DockerConfig(p)
	reg, _ := name.NewRegistry("registry.example")
	if a, err := kc.Keychain.Resolve(reg); err != nil || a != authn.Anonymous {
		t.Fatalf("missing file: %v, %v; want anonymous", a, err)
	}
	os.WriteFile(p, []byte(`{"auths": {"registry.example": {"auth": "`), 0o600)
	kc = DockerConfig(p)
	if _, err := kc.Keychain.Resolve(reg); err == nil || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "registry.example") {
		t.Fatalf("malformed file: %v; want an error naming %s only", err, p)
	}
	os.WriteFile(p, regtest.DockerConfig("registry.example", "u", "pw"), 0o600)
	kc = DockerConfig(p)
	a, err := kc.Keychain.Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := a.Authorization()
	if cfg.Username != "u" || cfg.Password != "pw" {
		t.Fatalf("credentials = %+v; want u/pw", cfg)
	}
	if !strings.Contains(kc.Name, p) {
		t.Errorf("name %q; want the path", kc.Name)
	}
}

type hungSource struct{ release chan struct{} }

func (h hungSource) Resolve(authn.Resource) (authn.Authenticator, error) {
	<-h.release
	return authn.Anonymous, nil
}

// A source that never answers (a hung credential helper) fails within the
// caller's deadline, named, instead of holding the read.
func TestChainBoundsASource(t *testing.T) {
	reg, _ := name.NewRegistry("registry.example")
	h := hungSource{release: make(chan struct{})}
	defer close(h.release)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, _, err := Chain(NamedKeychain{"helper", h}).ResolveNamed(ctx, reg)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "from helper") {
		t.Fatalf("ResolveNamed = %v; want the deadline, naming the source", err)
	}
}
