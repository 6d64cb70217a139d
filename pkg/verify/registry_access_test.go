package verify

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/internal/regtest"
)

// A registry that refuses access, or whose certificate is not trusted, is
// a failed look-up (ErrUnavailable) that says so, never "no signatures".
func TestFetchRefusedAccessIsUnavailable(t *testing.T) {
	ca, err := regtest.NewCA("verify test CA")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := regtest.Start(ca, regtest.Options{User: "u", Password: "pw-not-shown"})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	img, _ := random.Image(64, 1)
	ref, _ := name.ParseReference(reg.Host + "/app:1")
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "u", Password: "pw-not-shown"}),
		remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	root := t.TempDir()
	dir := filepath.Join(root, strings.Replace(reg.Host, ":", "_", 1)+"_")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(fmt.Sprintf("server = \"https://%s\"\nca = \"ca.crt\"\n", reg.Host)), 0o644)
	image := ref.Context().Digest(d.String())

	for name, c := range map[string]*registry.Client{
		"no credentials": registry.New(registry.Options{ConfigPath: root, Keychain: registry.Chain()}),
		"untrusted CA":   registry.New(registry.Options{Keychain: registry.Chain()}),
	} {
		sigs, err := NewRegistry(WithClient(c)).Fetch(t.Context(), image)
		var ae *registry.AccessError
		var te *registry.TLSError
		switch {
		case !errors.Is(err, ErrUnavailable) || len(sigs) != 0:
			t.Errorf("%s: Fetch = %d, %v; want ErrUnavailable", name, len(sigs), err)
		case name == "no credentials" && !errors.As(err, &ae):
			t.Errorf("%s: %v; want an AccessError", name, err)
		case name == "untrusted CA" && !errors.As(err, &te):
			t.Errorf("%s: %v; want a TLSError", name, err)
		case strings.Contains(err.Error(), "pw-not-shown"):
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}
