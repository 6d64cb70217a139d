package verify

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// flakyFetcher wraps a fetcher and can be switched off, like a registry going away.
type flakyFetcher struct {
	next SignatureFetcher
	down bool
}

func (f *flakyFetcher) Fetch(ctx context.Context, image name.Digest) ([]signature.Manifest, error) {
	if f.down {
		return nil, ErrUnavailable
	}
	return f.next.Fetch(ctx, image)
}

func fpKey(t *testing.T, s *testSigner) Key {
	t.Helper()
	k := s.Key()
	fp, err := keys.Fingerprint(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	k.Name = fp
	return k
}

func TestStoreVerifiesPersistsAndSurvivesAnOutage(t *testing.T) {
	host := testRegistry(t)
	img := pushRandom(t, host, "app")
	ci := newRSA(t, "ci")
	signLegacy(t, ci, img)
	ciKey := fpKey(t, ci)
	other := fpKey(t, newRSA(t, "other"))

	reg := &flakyFetcher{next: NewRegistry()}
	dir := NewDir(t.TempDir())
	st := NewStore(dir, reg)
	st.SetKeys([]Key{ciKey, other})
	digest := img.DigestStr()
	if st.Known(digest) || !strings.Contains(st.Status(digest), "not looked up") {
		t.Fatalf("a fresh store knows %s: %s", digest, st.Status(digest))
	}
	if err := st.Prefetch(context.Background(), digest, []string{img.Context().Name()}); err != nil {
		t.Fatal(err)
	}
	if !st.Verified(digest, ciKey.Name) || st.Verified(digest, other.Name) {
		t.Fatalf("verified: ci=%v other=%v; want only ci", st.Verified(digest, ciKey.Name), st.Verified(digest, other.Name))
	}

	// The registry goes away: a new fetch fails, and what was verified stays.
	reg.down = true
	if err := st.Prefetch(context.Background(), digest, []string{img.Context().Name()}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("prefetch with the registry down = %v", err)
	}
	if !st.Verified(digest, ciKey.Name) {
		t.Fatal("an outage made the store forget a verified signature")
	}

	// A restarted daemon (a new store) finds the signatures on disk.
	st2 := NewStore(dir, reg)
	st2.SetKeys([]Key{ciKey})
	if !st2.Load(context.Background(), digest) || !st2.Verified(digest, ciKey.Name) {
		t.Fatal("the persisted signatures did not verify after a restart")
	}

	// New keys (a new bundle without ci): re-verified locally, no longer trusted.
	st2.SetKeys([]Key{other})
	if st2.Verified(digest, ciKey.Name) {
		t.Fatal("a key no longer in force still counts")
	}
}

func TestStoreUnknownDigestWithRegistryDown(t *testing.T) {
	st := NewStore(nil, &flakyFetcher{down: true})
	d := "sha256:" + strings.Repeat("a", 64)
	if err := st.Prefetch(context.Background(), d, []string{"127.0.0.1:1/app"}); err == nil {
		t.Fatal("no error with the only source down")
	}
	if st.Known(d) || !strings.Contains(st.Status(d), "could not be fetched") {
		t.Fatalf("status = %q", st.Status(d))
	}
}
