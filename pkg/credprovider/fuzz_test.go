package credprovider

import (
	"strings"
	"testing"
)

// A pattern without glob characters matches itself, and matching never panics.
func FuzzMatches(f *testing.F) {
	for _, s := range []string{"*.example.com", "reg.example.com:5000/team", "127.0.0.1:5000", "[", "a/b/../c", "xn--bcher-kva.example", ""} {
		f.Add(s, "reg.example.com/team/app")
	}
	f.Fuzz(func(t *testing.T, glob, image string) {
		_ = matches(glob, image)
		if !strings.ContainsAny(glob, `*?[\`) {
			if _, err := parseSchemeless(glob); err == nil && !matches(glob, glob) {
				t.Fatalf("matches(%q, %q) = false", glob, glob)
			}
		}
	})
}

// Whatever a plugin writes, decoding returns an answer or an ErrPlugin
// error that does not quote it.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","auth":{"x.io":{"username":"u","password":"p"}}}`))
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Global","cacheDuration":"5m"}`))
	f.Add([]byte("garbage-SECRETVALUE"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decode("p", data)
		if err != nil {
			if r != nil {
				t.Fatal("an answer and an error")
			}
			if len(data) >= 12 && strings.Contains(err.Error(), string(data)) {
				t.Fatalf("error %q quotes the answer", err)
			}
			return
		}
		_, _ = r.auth.lookup("x.io/app")
	})
}
