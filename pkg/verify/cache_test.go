package verify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

type countingFetcher struct {
	calls int
	ms    []signature.Manifest
	err   error
}

func (f *countingFetcher) Fetch(context.Context, name.Digest) ([]signature.Manifest, error) {
	f.calls++
	return f.ms, f.err
}

func TestVerifierCache(t *testing.T) {
	key := newRSA(t, "rsa-a")
	digest := "sha256:" + strings.Repeat("ab", 32)
	image, err := name.NewDigest("reg.example/app@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	cache, err := NewCache(WithClock(clock.Now), WithTTL(time.Minute), WithNegativeTTL(10*time.Second), WithMaxEntries(2))
	if err != nil {
		t.Fatal(err)
	}
	f := &countingFetcher{ms: []signature.Manifest{legacyManifest(t, key, digest)}}
	v := NewVerifier(f, cache)
	ks := []Key{key.Key()}

	for i, wantHit := range []bool{false, true, true} {
		res, hit, err := v.Verify(t.Context(), image, ks)
		if err != nil || !res.OK() || hit != wantHit {
			t.Fatalf("call %d: Verify() = ok %v, hit %v, %v; want ok, hit %v", i, res.OK(), hit, err, wantHit)
		}
	}
	if f.calls != 1 {
		t.Fatalf("fetcher called %d times; want 1", f.calls)
	}
	clock.Advance(time.Minute)
	if _, hit, _ := v.Verify(t.Context(), image, ks); hit {
		t.Fatal("hit after the TTL; want a miss")
	}

	// Another key set is another entry.
	other := newECDSA(t, "ec")
	if res, hit, _ := v.Verify(t.Context(), image, []Key{other.Key()}); hit || res.OK() {
		t.Fatalf("other key: hit %v ok %v; want a miss, not verified", hit, res.OK())
	}
	// Negative results expire after the negative TTL.
	clock.Advance(11 * time.Second)
	if _, hit, _ := v.Verify(t.Context(), image, []Key{other.Key()}); hit {
		t.Fatal("negative result still cached after its TTL")
	}

	// Unavailable is never cached.
	f.err = ErrUnavailable
	img2, _ := name.NewDigest("reg.example/app@sha256:" + strings.Repeat("cd", 32))
	for range 2 {
		if _, hit, err := v.Verify(t.Context(), img2, ks); !errors.Is(err, ErrUnavailable) || hit {
			t.Fatalf("Verify(unavailable) = hit %v, %v; want ErrUnavailable, no hit", hit, err)
		}
	}
}

func TestCacheKey(t *testing.T) {
	a, b := newRSA(t, "rsa-a"), newECDSA(t, "ec")
	d := "sha256:" + strings.Repeat("ab", 32)
	k1, _ := CacheKey(d, []Key{a.Key(), b.Key()})
	renamed := a.Key()
	renamed.Name = "another name"
	k2, _ := CacheKey(d, []Key{b.Key(), renamed})
	if k1 != k2 {
		t.Error("same keys in another order or under another name: different cache keys")
	}
	if k3, _ := CacheKey(d, []Key{a.Key()}); k3 == k1 {
		t.Error("a subset of the keys shares the cache key")
	}
	pss := a.Key()
	pss.Algorithm = "RSA_PSS_SHA_256"
	if k4, _ := CacheKey(d, []Key{pss, b.Key()}); k4 == k1 {
		t.Error("another algorithm shares the cache key")
	}
}

func FuzzCacheKey(f *testing.F) {
	a := newRSA(f, "rsa-a")
	f.Add("sha256:"+strings.Repeat("ab", 32), "sha256:"+strings.Repeat("cd", 32))
	f.Fuzz(func(t *testing.T, d1, d2 string) {
		k1, err1 := CacheKey(d1, []Key{a.Key()})
		k2, err2 := CacheKey(d2, []Key{a.Key()})
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if (k1 == k2) != (d1 == d2) {
			t.Fatalf("CacheKey(%q) == CacheKey(%q) is %v", d1, d2, k1 == k2)
		}
	})
}
