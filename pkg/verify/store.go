package verify

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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
	_ byDigestOnly     = (*Dir)(nil)
)

// byDigestOnly marks a source that answers by the image digest alone,
// whatever the repository (a signature directory): Prefetch asks it once per
// discovery rather than once per repository searched, so that it is neither
// read nor held several times over.
type byDigestOnly interface{ answersByDigestOnly() }

// Bounds of the store. Beyond MaxDigests, an arbitrary digest is dropped
// (from memory and from the log): a later decision about it finds it
// unknown and fetches its signatures again, failing closed meanwhile.
// Beyond MaxSignaturesPerDigest signatures or MaxBytesPerDigest of manifests
// and blobs for one digest, the signatures that verified are kept first and
// the rest are dropped, with a failure saying so.
const (
	MaxDigests              = 50_000
	MaxSignaturesPerDigest  = 64
	MaxBytesPerDigest       = 1 << 20
	MaxErrors               = 10_000 // digests whose last fetch failed
	maxErrorText            = 1 << 10
	maxTriedKeysPerSigCheck = 64
)

// Store is the node's memory of image signatures: for each image digest that
// landed on the node, the signatures discovered for it and the keys (by
// fingerprint) they verified with. Decisions read it from memory; only
// Prefetch touches the network.
//
// Signatures are persisted (in a log under the daemon's state directory,
// read once by NewStore), so that a node keeps trusting what it verified
// across restarts and while the registry is unreachable. Verdicts are not
// persisted as such: they are recomputed from the stored signatures against
// the keys in force, which is also how a change of keys (a new bundle)
// invalidates them. Each (signature, key) pair is checked at most once per
// process: a new bundle costs only the checks its new keys need, done
// outside the lock that decisions read under.
type Store struct {
	sources []SignatureFetcher // registry and/or an operator's signature directory
	log     *sigLog            // nil: memory only
	now     func() time.Time
	// Insecure are registries (host[:port]) reached over plain HTTP.
	Insecure []string

	setMu  sync.Mutex        // one SetKeys at a time
	keyIDs map[string]uint32 // fingerprint+algorithm -> ID, guarded by setMu

	mu      sync.RWMutex
	ring    *keyring
	entries digestMap[*storeEntry]
	peak    int                   // entries.len() high-water mark, to shrink the map
	errs    digestMap[fetchError] // last failed discovery per digest
	persist persistState
}

type persistState struct {
	err error
	at  time.Time
}

// keyring is one set of keys in force, immutable once built.
type keyring struct {
	keys  []Key
	ids   []uint32
	fps   []string       // fingerprints, for hints
	names []string       // the keys' names: nearly every verdict is one of them, shared
	pos   map[uint32]int // ID -> index in keys
}

// sameAs reports whether r holds the same keys as o, in the same order and
// under the same names: verdicts under one are verdicts under the other.
func (r *keyring) sameAs(o *keyring) bool {
	if len(r.ids) != len(o.ids) {
		return false
	}
	for i := range r.ids {
		if r.ids[i] != o.ids[i] || r.keys[i].Name != o.keys[i].Name {
			return false
		}
	}
	return true
}

// sigCheck is a check with what keys said of it, shared by the entries
// (old and new) that hold the same signature.
type sigCheck struct {
	check
	mu sync.Mutex
	by uint32 // key ID that verified it (0: none yet)
	// missed is what the keys that did not verify it said (nil nearly
	// always: one key verified, and the store holds one check per
	// signature of the node's images).
	missed *keyMisses
}

// keyMisses are the keys that did not verify a signature.
type keyMisses struct {
	tried []uint32 // key IDs
	// certReasons are why the certificate witnesses last tried did not
	// verify it, for Status.
	certReasons string
}

// triedKeys returns the IDs of the keys that did not verify c; c.mu held.
func (c *sigCheck) triedKeys() []uint32 {
	if c.missed == nil {
		return nil
	}
	return c.missed.tried
}

// verifiedBy returns the index in r of the key that made c's signature,
// checking only keys not tried before. A signature made by one key is not
// made by another, so once a key verified, no other is tried while that key
// is in force (a certificate-bearing signature is tried again once it is
// not).
func (c *sigCheck) verifiedBy(r *keyring) int {
	if c.failure() != nil {
		return -1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by != 0 {
		if i, ok := r.pos[c.by]; ok {
			return i
		}
		if c.cert == nil {
			return -1
		}
		// A signature that carries its certificates can satisfy another
		// certificate witness's trust (the same witness after its trust
		// store was rotated): the keys in force are tried.
		c.by = 0
	}
	var todo []Key
	var todoFPs []string
	var todoIDs []uint32
	tried := c.triedKeys()
	for i, id := range r.ids {
		if !slices.Contains(tried, id) {
			todo, todoFPs, todoIDs = append(todo, r.keys[i]), append(todoFPs, r.fps[i]), append(todoIDs, id)
		}
	}
	if len(todo) == 0 {
		return -1
	}
	i, reasons, again := c.find(todo, todoFPs)
	if i >= 0 {
		c.by, c.missed = todoIDs[i], nil
		return r.pos[c.by]
	}
	if c.missed == nil {
		c.missed = &keyMisses{}
	}
	m := c.missed
	if reasons != "" {
		m.certReasons = reasons
	}
	// A key whose verifier could not judge is not tried: it is asked again
	// at the next judgement (a refresh, a reload).
	for j, id := range todoIDs {
		if !slices.Contains(again, j) {
			m.tried = append(m.tried, id)
		}
	}
	if len(m.tried) > maxTriedKeysPerSigCheck {
		// Keep only the keys in force: the others are tried again if they return.
		m.tried = slices.DeleteFunc(m.tried, func(id uint32) bool { _, ok := r.pos[id]; return !ok })
	}
	return -1
}

// storeEntry is what the store holds of one image digest (56 bytes, besides
// its checks: the node has one per image digest). Its verdict is nearly
// always one key, held as an index in ring; several keys and verdicts that
// end (CertExpiry) are behind more.
type storeEntry struct {
	checks []*sigCheck
	ring   *keyring   // the keys verified is for
	more   *entryMore // nil: one key verified, or none
	// fetched is when the sources were last read (Unix nanoseconds; 0:
	// never, what is held came from disk).
	fetched int64
	// one is 1 + the index in ring.names of the key that verified the
	// digest when it is the only one (0: none, or several: more).
	one  uint32
	fail int32 // index in checks of the first failure; -1: none
}

// entryMore is what few entries have.
type entryMore struct {
	// verified are the fingerprints (Key.Name) that verified the digest,
	// when they are several.
	verified []string
	// until holds, for the keys in verified whose every verified signature
	// stops verifying at a time (CertExpiry), the latest such time.
	until map[string]time.Time
}

// verified returns the fingerprints (Key.Name) that verified the digest,
// in the order of its checks; the slice is shared, not to be changed.
func (e *storeEntry) verified() []string {
	if e.more != nil && e.more.verified != nil {
		return e.more.verified
	}
	if e.one > 0 {
		return e.ring.names[e.one-1 : e.one : e.one]
	}
	return nil
}

// extra returns e.more, adding it.
func (e *storeEntry) extra() *entryMore {
	if e.more == nil {
		e.more = &entryMore{}
	}
	return e.more
}

// contentOf hashes what identifies a set of signatures of digest.
func contentOf(digest string, cs []*sigCheck) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range cs {
		src := c.source.text(digest)
		fmt.Fprintf(h, "%d:%s %d %x", len(src), src, c.layer, c.sum)
		for sig := range c.sigs.all() {
			fmt.Fprintf(h, " %x", sig)
		}
		if c.cert != nil {
			fmt.Fprintf(h, " cert %x", sha256.Sum256(c.cert.Blob))
		}
		if err := c.failure(); err != nil {
			fmt.Fprintf(h, " err %q", err.Error())
		}
		h.Write([]byte{'\n'})
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// reuse replaces fresh checks by the identical ones held before, which keep
// what keys said of them: a refresh verifies nothing twice. Both are of one
// digest, so their sources compare as their texts do.
func reuse(fresh, held []*sigCheck) []*sigCheck {
	type id struct {
		source source
		layer  int32
		sum    [sha256.Size]byte
	}
	byID := make(map[id]*sigCheck, len(held))
	for _, c := range held {
		if c.failure() == nil {
			byID[id{c.source, c.layer, c.sum}] = c
		}
	}
	for i, c := range fresh {
		if o, ok := byID[id{c.source, c.layer, c.sum}]; ok && c.failure() == nil && o.sigs == c.sigs && sameCert(o.cert, c.cert) {
			fresh[i] = o
		}
	}
	return fresh
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// sameCert reports whether two checks carry the same certificate-bearing
// signature (or both none): a certificate witness judges the whole blob.
func sameCert(a, b *certSig) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Format == b.Format && a.MediaType == b.MediaType && bytesEqual(a.Blob, b.Blob)
}

type fetchError struct {
	text string
	at   time.Time
}

// NewStore returns a store that discovers signatures through sources (tried
// in order, all of them) and persists them in persist (may be nil). It reads
// what persist holds at once; a failure to read or write it is reported by
// PersistError and leaves the store working from memory.
func NewStore(persist *Dir, sources ...SignatureFetcher) *Store {
	s := &Store{sources: sources, now: time.Now, keyIDs: map[string]uint32{},
		ring: &keyring{pos: map[uint32]int{}}, entries: newDigestMap[*storeEntry](0), errs: newDigestMap[fetchError](0)}
	if persist == nil {
		return s
	}
	var hints = map[string]string{} // interned, one string per key
	l, err := openLog(persist.path, func(digest string, ms []signature.Manifest, ks []string) {
		hint := ""
		if len(ks) > 0 {
			if h, ok := hints[ks[0]]; ok {
				hint = h
			} else {
				hint, hints[ks[0]] = ks[0], ks[0]
			}
		}
		checks := newChecks(digest, ms, hint)
		if len(checks) > MaxSignaturesPerDigest {
			checks = checks[:MaxSignaturesPerDigest]
		}
		s.entries.set(digest, &storeEntry{checks: checks, ring: s.ring, fail: -1})
	}, func(digest string) { s.entries.del(digest) })
	s.log = l
	if err != nil {
		s.persist = persistState{err: err, at: s.now()}
	}
	if s.entries.len() > MaxDigests {
		var drop []string
		for d := range s.entries.all {
			if s.entries.len()-len(drop) <= MaxDigests {
				break
			}
			drop = append(drop, d.String())
		}
		s.Forget(drop...)
	}
	s.peak = s.entries.len()
	return s
}

// newChecks extracts the checks of manifests; hint (a fingerprint that
// verified before) is tried first for checks that name no key.
func newChecks(digest string, ms []signature.Manifest, hint string) []*sigCheck {
	cs := extract(digest, ms)
	out := make([]*sigCheck, len(cs))
	for i := range cs {
		out[i] = &sigCheck{check: cs[i]}
		if f := out[i].said; f != nil {
			// The identity and annotations are not asked of the store.
			out[i].said = nil
			if f.err != nil || f.after != nil {
				out[i].said = &payloadFacts{err: f.err, after: f.after, covers: f.covers}
			}
		}
		if out[i].hint == "" {
			out[i].hint = hint
		}
	}
	return out
}

// certRefusal is what the certificate witnesses said of c when last tried.
func (c *sigCheck) certRefusal() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.missed == nil {
		return ""
	}
	return c.missed.certReasons
}

// judge computes e's verdict under r (public-key work only for pairs never
// checked) and returns the entry to store.
func (e *storeEntry) judge(r *keyring) *storeEntry {
	ne := &storeEntry{checks: e.checks, ring: r, fail: -1, fetched: e.fetched}
	ends := map[string]time.Time{} // per verified key: latest end, zero = never
	for i, c := range e.checks {
		k := c.verifiedBy(r)
		if k >= 0 && c.refusal() == nil {
			name := r.keys[k].Name
			end := validUntil(r.keys[k], c)
			if prev, seen := ends[name]; !seen {
				switch {
				case len(ends) == 0:
					ne.one = uint32(k + 1)
				case len(ends) == 1:
					ne.extra().verified = []string{r.names[ne.one-1], name}
					ne.one = 0
				default:
					ne.more.verified = append(ne.more.verified, name)
				}
				ends[name] = end
			} else if !prev.IsZero() && (end.IsZero() || end.After(prev)) {
				ends[name] = end
			}
		} else if ne.fail < 0 {
			ne.fail = int32(i)
		}
	}
	for name, end := range ends {
		if !end.IsZero() {
			m := ne.extra()
			if m.until == nil {
				m.until = map[string]time.Time{}
			}
			m.until[name] = end
		}
	}
	return ne
}

// validUntil is when c, verified by k, stops verifying by time alone (zero:
// never).
func validUntil(k Key, c *sigCheck) time.Time {
	if x, ok := k.Cert.(CertExpiry); ok && c.cert != nil {
		return x.ValidUntil(c.cert.CertSignature)
	}
	return time.Time{}
}

// expired reports whether key's verdict on e has ended at now.
func (e *storeEntry) expired(key string, now time.Time) bool {
	if e.more == nil {
		return false
	}
	end, ok := e.more.until[key]
	return ok && !now.Before(end)
}

// SetKeys sets the keys signatures are checked against (every key of every
// witness of the bundle in force, named by fingerprint) and re-verifies what
// the store holds, locally. Decisions go on meanwhile with the keys in force
// before; the new verdicts are swapped in at once at the end.
func (s *Store) SetKeys(ks []Key) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	r := &keyring{pos: map[uint32]int{}}
	for _, k := range ks {
		fp, err := keys.Fingerprint(k.Public)
		if err != nil {
			fp = k.Name
		}
		idKey := fp + " " + string(k.Algorithm)
		id, ok := s.keyIDs[idKey]
		if !ok {
			id = uint32(len(s.keyIDs) + 1)
			s.keyIDs[idKey] = id
		}
		if _, dup := r.pos[id]; dup {
			continue
		}
		r.pos[id] = len(r.keys)
		r.keys, r.ids, r.fps, r.names = append(r.keys, k), append(r.ids, id), append(r.fps, fp), append(r.names, k.Name)
	}

	s.mu.RLock()
	same := r.sameAs(s.ring)
	s.mu.RUnlock()
	if same {
		// A reload with the keys in force: every verdict stands, and
		// re-judging 10,000 digests would only make garbage.
		return
	}

	s.mu.RLock()
	digests := make([]digestID, 0, s.entries.len())
	old := make([]*storeEntry, 0, s.entries.len())
	for d, e := range s.entries.all {
		digests, old = append(digests, d), append(old, e)
	}
	s.mu.RUnlock()

	judged := make([]*storeEntry, len(old))
	for i, e := range old {
		judged[i] = e.judge(r)
	}

	s.mu.Lock()
	for i, d := range digests {
		if e, _ := s.entries.getID(d); e == old[i] {
			s.entries.setID(d, judged[i])
		}
	}
	s.ring = r
	// Entries stored meanwhile (Prefetch) were judged under the old keys:
	// they are judged again outside the lock (a certificate witness's
	// verifier may be another process), their old verdicts standing until
	// then. A Prefetch storing from now on judges under r itself.
	stale := map[digestID]*storeEntry{}
	for d, e := range s.entries.all {
		if e.ring != r {
			stale[d] = e
		}
	}
	s.mu.Unlock()
	for d, e := range stale {
		ne := e.judge(r)
		s.mu.Lock()
		if cur, _ := s.entries.getID(d); cur == e {
			s.entries.setID(d, ne)
		}
		s.mu.Unlock()
	}
}

// Verified reports whether a signature over digest verified with the key of
// that fingerprint. It answers from memory, in constant time.
func (s *Store) Verified(digest, fingerprint string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.verified(digest, fingerprint)
}

// VerifiedNow is Verified without waiting: ok is false, and the answer
// unknown, while a writer holds the store (see KnownNow).
func (s *Store) VerifiedNow(digest, fingerprint string) (verified, ok bool) {
	if !s.mu.TryRLock() {
		return false, false
	}
	defer s.mu.RUnlock()
	return s.verified(digest, fingerprint), true
}

func (s *Store) verified(digest, fingerprint string) bool {
	e, ok := s.entries.get(digest)
	// The clock is read only for a verdict that ends (rare): a decision's
	// lookup costs the digest's decoding (digestMap) and no time.Now.
	return ok && slices.Contains(e.verified(), fingerprint) && (e.more == nil || !e.expired(fingerprint, s.now()))
}

// FetchedAt returns when the sources were last read for digest (zero when
// never, or when what the store holds came from disk).
func (s *Store) FetchedAt(digest string) time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e, ok := s.entries.get(digest); ok {
		if e.fetched != 0 {
			return time.Unix(0, e.fetched)
		}
	}
	return time.Time{}
}

// Known reports whether signatures of digest were looked up (found or not).
func (s *Store) Known(digest string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.entries.get(digest)
	return ok
}

// KnownNow is Known without waiting, for a decision made on the caller's
// goroutine (pkg/plugin's fast path): ok is false, and the answer unknown,
// while a writer holds the store (a compaction, a burst of forgetting).
func (s *Store) KnownNow(digest string) (known, ok bool) {
	if !s.mu.TryRLock() {
		return false, false
	}
	defer s.mu.RUnlock()
	_, known = s.entries.get(digest)
	return known, true
}

// Status explains what the store knows of digest, for refusal messages.
func (s *Store) Status(digest string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e, ok := s.entries.get(digest); ok {
		switch {
		case len(e.verified()) > 0:
			msg := fmt.Sprintf("verified signatures by key(s) %s", strings.Join(e.verified(), ", "))
			now := s.now()
			for _, k := range e.verified() {
				if e.expired(k, now) {
					msg += fmt.Sprintf("; %s's signature stopped verifying at %s (its certificate chain expired): re-sign with a valid certificate",
						k, e.more.until[k].UTC().Format(time.RFC3339))
				}
			}
			return msg
		case e.fail < 0:
			return ErrNoSignatures.Error()
		}
		c := e.checks[e.fail]
		err := c.failure()
		if err == nil {
			err = c.refusal()
			if i := c.verifiedBy(e.ring); i < 0 {
				err = badSignature(e.ring.keys)
				if r := c.certRefusal(); r != "" {
					err = fmt.Errorf("%w; %s", err, r)
				}
			}
		}
		return fmt.Sprintf("%s: %v", c.source.text(digest), err)
	}
	if fe, ok := s.errs.get(digest); ok {
		return fmt.Sprintf("signatures could not be fetched (%s ago): %s", s.now().Sub(fe.at).Round(time.Second), fe.text)
	}
	return "signatures not looked up yet"
}

// Unreadable reports whether the store holds nothing for digest but a failed
// look-up: its signatures could not be read, which says nothing of whether
// it is signed.
func (s *Store) Unreadable(digest string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.entries.get(digest); ok {
		return false
	}
	_, failed := s.errs.get(digest)
	return failed
}

// Len returns how many digests the store holds.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.entries.len()
}

// Load reports whether the store holds signatures of digest from disk or an
// earlier look-up, without the network: NewStore has read everything
// persisted, so this is a memory lookup.
func (s *Store) Load(_ context.Context, digest string) bool { return s.Known(digest) }

// PersistError returns the last failure to read or write the state on disk
// (wrapping ErrPersist), or nil. It is cleared by the next successful write.
func (s *Store) PersistError() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.persist.err
}

func (s *Store) notePersist(err error) {
	s.mu.Lock()
	if err != nil {
		s.persist = persistState{err: err, at: s.now()}
	} else if s.persist.err != nil {
		s.persist = persistState{}
	}
	s.mu.Unlock()
}

// Forget drops what the store holds of digests (images that left the node),
// in memory and on disk. Unknown digests are ignored.
func (s *Store) Forget(digests ...string) {
	s.mu.Lock()
	for _, d := range digests {
		s.entries.del(d)
		s.errs.del(d)
	}
	// Go maps never give back their buckets, and the entries left are
	// scattered over memory spans the forgotten ones half-emptied (the
	// runtime returns a span only when nothing in it lives): once most
	// entries left, rebuild the maps from copies of what stays.
	if s.entries.len() < s.peak/4 {
		s.compactLocked(strings.Clone)
	}
	s.mu.Unlock()
	if s.log != nil {
		s.notePersist(s.log.forget(digests))
	}
}

// compactLocked rebuilds the maps from copies of what they hold, keyed by
// key(digest) (a copy of it, or one that lives anyway), the entries' copies
// in one arena (arena.go); s.mu held.
func (s *Store) compactLocked(key func(string) string) {
	entries := newDigestMap[*storeEntry](s.entries.len())
	hints := map[string]string{} // one copy of each key hint
	a := newArena(s.entries)
	for d, e := range s.entries.all {
		entries.setID(d.rekey(key), e.copy(hints, a))
	}
	errs := newDigestMap[fetchError](s.errs.len())
	for d, fe := range s.errs.all {
		errs.setID(d.rekey(key), fetchError{text: strings.Clone(fe.text), at: fe.at})
	}
	s.entries, s.errs, s.peak = entries, errs, entries.len()
}

// Compact rebuilds the store's memory (and its log's index) from copies, as
// Forget does once most digests left. Call it after a burst that allocated
// much besides the store (boot verification): its entries are then
// scattered over memory spans that the burst's garbage half-emptied, which
// the runtime cannot give back while one object in them lives. The store
// keeps sha256 digests as their bytes; for the others, kept as text,
// canonical, if not nil, returns a copy that lives anyway, "" for none, and
// the store copies the rest, once for its entries and its log's index. It
// costs one copy of the store.
func (s *Store) Compact(canonical func(digest string) string) {
	copies := map[string]string{}
	key := func(d string) string {
		if canonical != nil {
			if c := canonical(d); c == d {
				return c
			}
		}
		if c, ok := copies[d]; ok {
			return c
		}
		c := strings.Clone(d)
		copies[c] = c
		return c
	}
	s.mu.Lock()
	s.compactLocked(key)
	s.mu.Unlock()
	if s.log != nil {
		s.log.rekey(key)
	}
}

// copy returns e in fresh memory: its checks, their signatures and sources.
// A check being verified meanwhile (SetKeys, outside the store's lock) is
// copied with what keys said of it so far; what it learns later is learnt
// again at most once.
func (e *storeEntry) copy(hints map[string]string, a *arena) *storeEntry {
	n := a.entry()
	*n = *e
	n.checks = a.checkList(len(e.checks))
	for i, c := range e.checks {
		c.mu.Lock()
		nc := a.check()
		nc.check, nc.by = c.check, c.by
		if m := c.missed; m != nil {
			nc.missed = &keyMisses{tried: slices.Clone(m.tried), certReasons: strings.Clone(m.certReasons)}
		}
		c.mu.Unlock()
		nc.source = c.source.cloneIn(a)
		if c.cert != nil {
			nc.cert = &certSig{c.cert.CertSignature, strings.Clone(c.cert.digest)}
		}
		if h, ok := hints[c.hint]; ok {
			nc.hint = h
		} else {
			nc.hint = strings.Clone(c.hint)
			hints[nc.hint] = nc.hint
		}
		if f := c.said; f != nil {
			nc.said = &payloadFacts{err: f.err, after: f.after, covers: strings.Clone(f.covers)}
		}
		nc.sigs = sigList(a.str(string(c.sigs)))
		n.checks[i] = nc
	}
	if m := e.more; m != nil {
		n.more = &entryMore{verified: slices.Clone(m.verified), until: maps.Clone(m.until)}
	}
	return n
}

// Retain forgets every digest not in live (the node's images, e.g. at boot).
func (s *Store) Retain(live []string) {
	keep := make(map[digestID]struct{}, len(live))
	for _, d := range live {
		keep[idOf(d)] = struct{}{}
	}
	var drop []string
	s.mu.RLock()
	for d := range s.entries.all {
		if _, ok := keep[d]; !ok {
			drop = append(drop, d.String())
		}
	}
	for d := range s.errs.all {
		if _, ok := keep[d]; !ok {
			drop = append(drop, d.String())
		}
	}
	s.mu.RUnlock()
	if len(drop) > 0 {
		s.Forget(drop...)
	}
}

// Close writes what is pending to disk and closes the log.
func (s *Store) Close() error {
	if s.log == nil {
		return nil
	}
	return s.log.close()
}

// Prefetch discovers the signatures of an image digest in its repositories
// (e.g. "registry.example/app") and in the other sources, verifies them and
// keeps them. An unreachable source is an error and leaves what the store
// already had; when some repositories answered and others did not, what they
// gave is kept and the others' failure is returned. An image without
// signatures is not an error. A failure to
// persist what was verified is returned wrapping ErrPersist, and what was
// verified counts all the same.
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
	var fresh []signature.Manifest
	var errs []error
	for _, src := range s.sources {
		targets := refs
		if _, ok := src.(byDigestOnly); ok {
			targets = refs[:1] // the same answer for every repository
		}
		for _, ref := range targets {
			ms, err := src.Fetch(ctx, ref)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ref.Context(), err))
				continue
			}
			fresh = append(fresh, ms...)
		}
	}
	if len(fresh) == 0 && len(errs) > 0 {
		err := errors.Join(errs...)
		s.noteFetchError(digest, err)
		return err
	}

	// Signatures live per repository: keep what other repositories (or an
	// earlier look-up) gave, replacing only what these sources gave again.
	s.mu.RLock()
	old, _ := s.entries.get(digest)
	r := s.ring
	s.mu.RUnlock()
	isFresh := map[source]bool{}
	for _, m := range fresh {
		isFresh[sourceOf(digest, m.Source)] = true
	}
	checks := newChecks(digest, fresh, "")
	all := fresh
	if old != nil {
		checks = reuse(checks, old.checks)
		for _, c := range old.checks {
			if !isFresh[c.source] && c.source != sourceOf(digest, boundSource) {
				checks = append(checks, c)
			}
		}
		if s.log != nil {
			kept, err := s.log.get(digest)
			if err != nil {
				s.notePersist(err)
			}
			for _, m := range kept {
				if !isFresh[sourceOf(digest, m.Source)] {
					all = append(all, m)
				}
			}
		}
	}
	e := (&storeEntry{checks: checks}).judge(r)
	e, all = bound(digest, e, all, r)
	e.fetched = s.now().UnixNano()
	// content identifies the signatures held, so that a refresh that found
	// the same ones writes nothing.
	content := contentOf(digest, e.checks)

	// SetKeys ran meanwhile: judge again under the keys in force, outside
	// the lock (a certificate witness's verifier may be another process).
	s.mu.Lock()
	for s.ring != r {
		r = s.ring
		s.mu.Unlock()
		e = e.judge(r)
		s.mu.Lock()
	}
	s.entries.set(digest, e)
	s.errs.del(digest)
	var evict string
	if s.entries.len() > MaxDigests {
		id := idOf(digest)
		for d := range s.entries.all {
			if d != id {
				evict = d.String()
				break
			}
		}
	}
	s.peak = max(s.peak, s.entries.len())
	s.mu.Unlock()
	if evict != "" {
		s.Forget(evict)
	}

	// Some repositories answered, others did not (a signature repository
	// down): what was found is kept, and the failure is reported.
	var partial error
	if len(errs) > 0 {
		partial = fmt.Errorf("%w (the signatures the other repositories gave were kept)", errors.Join(errs...))
	}
	if s.log == nil || len(all) == 0 || s.log.holds(digest, content) {
		return partial // nothing new to write
	}
	err := s.log.put(digest, content, all, e.verified())
	s.notePersist(err)
	if err != nil {
		return errors.Join(partial, fmt.Errorf("keeping signatures of %s on disk: %w", digest, err))
	}
	return partial
}

// bound keeps a digest's signatures within MaxSignaturesPerDigest and
// MaxBytesPerDigest, manifests with a verified signature first.
func bound(digest string, e *storeEntry, all []signature.Manifest, r *keyring) (*storeEntry, []signature.Manifest) {
	size := 0
	for _, m := range all {
		size += manifestSize(m)
	}
	if len(e.checks) <= MaxSignaturesPerDigest && size <= MaxBytesPerDigest {
		return e, all
	}
	good := map[string]bool{}
	for _, c := range e.checks {
		if c.verifiedBy(r) >= 0 {
			good[c.source.text(digest)] = true
		}
	}
	ordered := slices.Clone(all)
	slices.SortStableFunc(ordered, func(a, b signature.Manifest) int {
		switch {
		case good[a.Source] == good[b.Source]:
			return 0
		case good[a.Source]:
			return -1
		}
		return 1
	})
	keep := map[string]bool{}
	var kept []signature.Manifest
	size, n := 0, 0
	for _, m := range ordered {
		mc := 0
		src := sourceOf(digest, m.Source)
		for _, c := range e.checks {
			if c.source == src {
				mc++
			}
		}
		if n+mc > MaxSignaturesPerDigest || size+manifestSize(m) > MaxBytesPerDigest {
			continue
		}
		keep[m.Source], n, size = true, n+mc, size+manifestSize(m)
		kept = append(kept, m)
	}
	var checks []*sigCheck
	for _, c := range e.checks {
		if keep[c.source.text(digest)] {
			checks = append(checks, c)
		}
	}
	checks = append(checks, &sigCheck{check: failed(sourceOf(digest, boundSource), -1,
		fmt.Errorf("%w: more signatures than the %d (or %d bytes) kept per image digest; the others were dropped",
			signature.ErrTooMany, MaxSignaturesPerDigest, MaxBytesPerDigest))})
	return (&storeEntry{checks: checks, fetched: e.fetched}).judge(r), kept
}

// boundSource names the failure bound adds; it is not a source to merge.
const boundSource = "signature store"

func manifestSize(m signature.Manifest) int {
	n := len(m.Raw)
	for _, b := range m.Blobs {
		n += len(b)
	}
	return n
}

// noteFetchError keeps the last failed discovery of digest, bounded in
// number (an arbitrary one is dropped beyond MaxErrors) and in length.
func (s *Store) noteFetchError(digest string, err error) {
	text := err.Error()
	if len(text) > maxErrorText {
		text = text[:maxErrorText] + "…"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.errs.get(digest); !ok && s.errs.len() >= MaxErrors {
		for d := range s.errs.all {
			s.errs.del(d.String())
			break
		}
	}
	s.errs.set(digest, fetchError{text: text, at: s.now()})
}
