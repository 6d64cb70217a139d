package verify

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// SignatureFetcher finds the signature manifests of an image digest.
// Registry and Dir implement it.
type SignatureFetcher interface {
	Fetch(ctx context.Context, image name.Digest) ([]signature.Manifest, error)
}

var (
	_ SignatureFetcher = (*Registry)(nil)
	_ SignatureFetcher = (*Dir)(nil)
)

// Cache defaults.
const (
	DefaultTTL         = 10 * time.Minute
	DefaultNegativeTTL = 30 * time.Second
	DefaultMaxEntries  = 10000
)

// Cache memoises verification results per (image digest, key set). It
// stores definitive results only (verified or not); a fetch that failed
// (ErrUnavailable) never reaches it. Results that did not verify expire
// sooner, so that an image signed a moment later is trusted soon.
type Cache struct {
	ttl, negativeTTL time.Duration
	max              int
	now              func() time.Time

	mu      sync.Mutex
	entries map[string]*list.Element
	lru     *list.List // front = most recently used
}

type cacheEntry struct {
	key     string
	res     Result
	expires time.Time
}

// CacheOption configures a Cache.
type CacheOption func(*Cache) error

// WithTTL sets how long a verified result is kept. The default is DefaultTTL.
func WithTTL(d time.Duration) CacheOption {
	return func(c *Cache) error {
		if d <= 0 {
			return fmt.Errorf("cache TTL %s: must be positive", d)
		}
		c.ttl = d
		return nil
	}
}

// WithNegativeTTL sets how long a not-verified result is kept. The default
// is DefaultNegativeTTL.
func WithNegativeTTL(d time.Duration) CacheOption {
	return func(c *Cache) error {
		if d <= 0 {
			return fmt.Errorf("negative cache TTL %s: must be positive", d)
		}
		c.negativeTTL = d
		return nil
	}
}

// WithMaxEntries bounds the cache; the least recently used entry goes
// first. The default is DefaultMaxEntries.
func WithMaxEntries(n int) CacheOption {
	return func(c *Cache) error {
		if n <= 0 {
			return fmt.Errorf("cache size %d: must be positive", n)
		}
		c.max = n
		return nil
	}
}

// WithClock sets the time source (for tests). The default is time.Now.
func WithClock(now func() time.Time) CacheOption {
	return func(c *Cache) error { c.now = now; return nil }
}

// NewCache returns an empty cache.
func NewCache(opts ...CacheOption) (*Cache, error) {
	c := &Cache{ttl: DefaultTTL, negativeTTL: DefaultNegativeTTL, max: DefaultMaxEntries, now: time.Now,
		entries: map[string]*list.Element{}, lru: list.New()}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// CacheKey derives the cache key of (digest, keys): a SHA-256 over the
// digest and the sorted fingerprints and algorithms of the keys, so that
// the same keys in another order or under other names share an entry, and
// any other key set does not.
func CacheKey(digest string, ks []Key) (string, error) {
	parts := make([]string, 0, len(ks))
	for _, k := range ks {
		fp, err := keys.Fingerprint(k.Public)
		if err != nil {
			return "", err
		}
		parts = append(parts, fp+" "+string(k.Algorithm))
	}
	sort.Strings(parts)
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s\n", len(digest), digest)
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Get returns the cached result for key, if present and fresh.
func (c *Cache) Get(key string) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return Result{}, false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, key)
		return Result{}, false
	}
	c.lru.MoveToFront(el)
	return e.res, true
}

// Put stores res under key.
func (c *Cache) Put(key string, res Result) {
	ttl := c.ttl
	if !res.OK() {
		ttl = c.negativeTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		e.res, e.expires = res, c.now().Add(ttl)
		c.lru.MoveToFront(el)
		return
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, res: res, expires: c.now().Add(ttl)})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry).key)
	}
}

// Verifier discovers and verifies signatures, through a cache.
type Verifier struct {
	fetcher SignatureFetcher
	cache   *Cache
}

// NewVerifier returns a Verifier that fetches with f and caches in c
// (nil: no cache).
func NewVerifier(f SignatureFetcher, c *Cache) *Verifier { return &Verifier{fetcher: f, cache: c} }

// Verify returns the result for image against ks, and whether it came from
// the cache. An error wraps ErrUnavailable (or another operational cause)
// and is never cached.
func (v *Verifier) Verify(ctx context.Context, image name.Digest, ks []Key) (Result, bool, error) {
	var key string
	if v.cache != nil {
		var err error
		if key, err = CacheKey(image.DigestStr(), ks); err != nil {
			return Result{}, false, err
		}
		if res, ok := v.cache.Get(key); ok {
			return res, true, nil
		}
	}
	ms, err := v.fetcher.Fetch(ctx, image)
	if err != nil {
		return Result{}, false, err
	}
	res := Verify(image.DigestStr(), ms, ks)
	if v.cache != nil {
		v.cache.Put(key, res)
	}
	return res, false, nil
}
