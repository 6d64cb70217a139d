package bundlestore

import (
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/bundleoci"

	"github.com/nri-csig/nri-csig/pkg/policy"

	"github.com/google/go-containerregistry/pkg/registry"
)

// testRegistry serves an in-memory OCI registry on 127.0.0.1 and returns its host:port.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestStoreOCISource(t *testing.T) {
	testKeys(t)
	host := testRegistry(t)
	ref := host + "/security/csig-bundle:prod"
	signer := ecKeys[3]
	push := func(serial string, enabled bool) {
		t.Helper()
		data := bundleText(t, serial, enabled)
		k := mustLocal(t, signer)
		sig, err := policy.SignBundle(t.Context(), data, k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bundleoci.PushBundle(t.Context(), ref, data, sig); err != nil {
			t.Fatal(err)
		}
	}
	push("7", false)
	ev := &events{}
	s, err := NewStore(WithOCISource(ref), WithSigningKey(&signer.PublicKey), WithStateDir(t.TempDir()), WithReloadHook(ev.hook))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e := ev.last(t); e.Outcome != Loaded || e.Serial != 7 || !strings.HasPrefix(e.Source, host) {
		t.Errorf("event = %+v", e)
	}
	n := ev.count()
	s.poll(t.Context())
	if ev.count() != n {
		t.Error("an unchanged artifact was judged again")
	}
	push("8", true)
	s.poll(t.Context())
	if s.Current().Serial != 8 || len(s.Current().Covering("c1", "default")) != 1 {
		t.Fatalf("after pushing serial 8, Current = %d", s.Current().Serial)
	}
	// An unsigned push is refused.
	if _, err := bundleoci.PushBundle(t.Context(), ref, bundleText(t, "9", false), nil); err != nil {
		t.Fatal(err)
	}
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !errors.Is(e.Err, policy.ErrUnsigned) || s.Current().Serial != 8 {
		t.Errorf("event = %+v, serial %d; want the unsigned bundle refused and 8 in force", e, s.Current().Serial)
	}
}
