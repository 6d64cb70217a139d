package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// Store is the node's memory of image signatures: for each image digest that
// landed on the node, the signature manifests discovered for it and the keys
// (by fingerprint) they verified with. Decisions read it from memory; only
// Prefetch touches the network.
//
// Signatures are persisted (in a Dir under the daemon's state directory), so
// that a node keeps trusting what it verified across restarts and while the
// registry is unreachable. Verdicts are not persisted as such: they are
// recomputed from the stored signatures against the keys in force, which is
// also how a change of keys (a new bundle) invalidates them.
type Store struct {
	sources []SignatureFetcher // registry and/or an operator's signature directory
	persist *Dir               // nil: memory only
	now     func() time.Time
	// Insecure are registries (host[:port]) reached over plain HTTP.
	Insecure []string

	mu      sync.RWMutex
	keys    []Key // Name = key fingerprint
	entries map[string]*storeEntry
	errs    map[string]fetchError // last failed discovery per digest
	putMu   sync.Mutex
}

type storeEntry struct {
	manifests []signature.Manifest
	verified  []string // fingerprints
	result    Result
	fetched   time.Time // when the sources were last read (zero: from disk)
}

type fetchError struct {
	err error
	at  time.Time
}

// NewStore returns a store that discovers signatures through sources (tried
// in order, all of them) and persists them in persist (may be nil).
func NewStore(persist *Dir, sources ...SignatureFetcher) *Store {
	return &Store{sources: sources, persist: persist, now: time.Now,
		entries: map[string]*storeEntry{}, errs: map[string]fetchError{}}
}

// SetKeys sets the keys signatures are checked against (every key of every
// witness of the bundle in force, named by fingerprint) and re-verifies what
// the store holds, locally.
func (s *Store) SetKeys(ks []Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = slices.Clone(ks)
	for d, e := range s.entries {
		ne := s.verifyLocked(d, e.manifests)
		ne.fetched = e.fetched
		s.entries[d] = ne
	}
}

func (s *Store) verifyLocked(digest string, ms []signature.Manifest) *storeEntry {
	res := Verify(digest, ms, s.keys)
	return &storeEntry{manifests: ms, verified: res.Keys(), result: res}
}

// Verified reports whether a signature over digest verified with the key of
// that fingerprint. It answers from memory.
func (s *Store) Verified(digest, fingerprint string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.entries[digest]
	return ok && slices.Contains(e.verified, fingerprint)
}

// FetchedAt returns when the sources were last read for digest (zero when
// never, or when what the store holds came from disk).
func (s *Store) FetchedAt(digest string) time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e, ok := s.entries[digest]; ok {
		return e.fetched
	}
	return time.Time{}
}

// Known reports whether signatures of digest were looked up (found or not).
func (s *Store) Known(digest string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.entries[digest]
	return ok
}

// Status explains what the store knows of digest, for refusal messages.
func (s *Store) Status(digest string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e, ok := s.entries[digest]; ok {
		if len(e.verified) > 0 {
			return fmt.Sprintf("verified signatures by key(s) %s", strings.Join(e.verified, ", "))
		}
		if err := e.result.Err(); err != nil {
			return strings.TrimPrefix(err.Error(), digest+": ")
		}
		return "no signature verified"
	}
	if fe, ok := s.errs[digest]; ok {
		return fmt.Sprintf("signatures could not be fetched (%s ago): %v", s.now().Sub(fe.at).Round(time.Second), fe.err)
	}
	return "signatures not looked up yet"
}

// Len returns how many digests the store holds.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}

// Load reads what was persisted for digest, without the network. It returns
// false when nothing was stored.
func (s *Store) Load(ctx context.Context, digest string) bool {
	if s.persist == nil {
		return false
	}
	ref, err := name.NewDigest("local.invalid/persisted@" + digest)
	if err != nil {
		return false
	}
	ms, err := s.persist.Fetch(ctx, ref)
	if err != nil || len(ms) == 0 {
		return false
	}
	s.mu.Lock()
	s.entries[digest] = s.verifyLocked(digest, ms)
	s.mu.Unlock()
	return true
}

// Prefetch discovers the signatures of an image digest in its repositories
// (e.g. "registry.example/app") and in the other sources, verifies them and
// keeps them. An unreachable source is an error and leaves what the store
// already had; an image without signatures is not an error.
func (s *Store) Prefetch(ctx context.Context, digest string, repos []string) error {
	refs := make([]name.Digest, 0, len(repos))
	for _, r := range repos {
		opts := []name.Option{name.WeakValidation}
		if host, _, _ := strings.Cut(r, "/"); slices.Contains(s.Insecure, host) {
			opts = append(opts, name.Insecure)
		}
		ref, err := name.NewDigest(r+"@"+digest, opts...)
		if err != nil {
			continue
		}
		refs = append(refs, ref)
	}
	if len(refs) == 0 {
		// Sources that ignore the repository (a signature directory) still answer.
		ref, err := name.NewDigest("local.invalid/unknown@"+digest, name.WeakValidation)
		if err != nil {
			return err
		}
		refs = append(refs, ref)
	}
	var all []signature.Manifest
	var errs []error
	for _, src := range s.sources {
		for _, ref := range refs {
			ms, err := src.Fetch(ctx, ref)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ref.Context(), err))
				continue
			}
			all = append(all, ms...)
		}
	}
	if len(all) == 0 && len(errs) > 0 {
		err := errors.Join(errs...)
		s.mu.Lock()
		s.errs[digest] = fetchError{err: err, at: s.now()}
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	delete(s.errs, digest)
	// Signatures live per repository: keep what other repositories (or an
	// earlier look-up) gave, replacing only what these sources gave again.
	if old, ok := s.entries[digest]; ok {
		fresh := map[string]bool{}
		for _, m := range all {
			fresh[m.Source] = true
		}
		for _, m := range old.manifests {
			if !fresh[m.Source] {
				all = append(all, m)
			}
		}
	}
	e := s.verifyLocked(digest, all)
	e.fetched = s.now()
	s.entries[digest] = e
	s.mu.Unlock()
	if s.persist != nil && len(all) > 0 {
		s.putMu.Lock()
		defer s.putMu.Unlock()
		if err := s.persist.Put(refs[0], all); err != nil {
			return fmt.Errorf("persisting signatures of %s: %w", digest, err)
		}
	}
	return nil
}
