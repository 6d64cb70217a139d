//go:build integration

package cosign

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// countingRegistry serves go-containerregistry's registry on loopback and
// records every request it answers, so a test can say how many each
// verifier made. (The side-by-side benchmark of wall time and memory is
// BenchmarkVerifyVsCosign in integration/scale, in make bench's table.)
type countingRegistry struct {
	host string
	mu   sync.Mutex
	log  []string
}

func startCountingRegistry(t testing.TB, referrersAPI bool) *countingRegistry {
	t.Helper()
	c := &countingRegistry{}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(referrersAPI))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.log = append(c.log, r.Method+" "+r.URL.Path)
		c.mu.Unlock()
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	c.host = u.Host
	return c
}

// since returns the requests made after mark and the new mark.
func (c *countingRegistry) since(mark int) ([]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log[mark:]...), len(c.log)
}

func (c *countingRegistry) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.log)
}

// TestVerifyRequests prints, for one run of each verifier, the requests it
// made (what integration/scale's BenchmarkVerifyVsCosign counts), and holds
// nri-csig to at most as many as cosign.
func TestVerifyRequests(t *testing.T) {
	for _, format := range []string{"legacy", "bundle"} {
		t.Run(format, func(t *testing.T) {
			reg := startCountingRegistry(t, format == "bundle")
			tag, digestRef := pushImage(t, reg.host, "req", randomImage(t))
			priv, pub := cosignKeyPair(t, "ecdsa")
			args := append(append([]string{}, cosignSignFlags...), "--key", priv)
			if format == "legacy" {
				args = append(args, "--new-bundle-format=false")
			}
			if r := cosign(t, append(args, digestRef)...); r.code != 0 {
				t.Fatalf("cosign sign: %s", r.out)
			}
			mark := reg.mark()
			if r := csig(t, "verify", "--key", pub, tag); r.code != 0 {
				t.Fatalf("nri-csig verify: exit %d\n%s", r.code, r.out)
			}
			ours, mark := reg.since(mark)
			if r := cosign(t, append(cosignVerifyFlags, "--key", pub, tag)...); r.code != 0 {
				t.Fatalf("cosign verify: exit %d\n%s", r.code, r.out)
			}
			theirs, _ := reg.since(mark)
			t.Logf("nri-csig verify: %d requests\n  %v\ncosign verify: %d requests\n  %v", len(ours), ours, len(theirs), theirs)
			if len(ours) > len(theirs) {
				t.Errorf("nri-csig verify made %d requests, cosign %d; want at most as many", len(ours), len(theirs))
			}
		})
	}
}
