package verify

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// mapFetcher answers from memory, like a registry holding ms.
type mapFetcher struct {
	mu sync.Mutex
	ms map[string][]signature.Manifest
}

func (f *mapFetcher) Fetch(_ context.Context, image name.Digest) ([]signature.Manifest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ms[image.DigestStr()], nil
}

func testDigest(i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint("image ", i)))
	return fmt.Sprintf("sha256:%x", sum)
}

// bundleManifest is a referrer carrying a Sigstore bundle by s over digest,
// with the publicKey hint cosign writes.
func bundleManifest(t testing.TB, s *testSigner, digest string) signature.Manifest {
	t.Helper()
	b := makeBundle(t, s, digest)
	fp, _ := keys.Fingerprint(s.key.Public())
	sum := strings.TrimPrefix(fp, "sha256:")
	raw := make([]byte, 32)
	for i := range raw {
		fmt.Sscanf(sum[2*i:2*i+2], "%02x", &raw[i])
	}
	b = []byte(strings.Replace(string(b), `"hint":"test"`, `"hint":"`+base64.StdEncoding.EncodeToString(raw)+`"`, 1))
	d := signature.DigestOf(b)
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "config": map[string]any{}, "layers": []any{
		map[string]any{"mediaType": signature.BundleMediaType, "digest": d, "size": len(b)}}})
	return signature.Manifest{Source: "reg/app@" + signature.DigestOf(m), Raw: m, Blobs: map[string][]byte{d: b}}
}

// countChecks counts public-key checks until the test ends.
func countChecks(t testing.TB) *atomic.Int64 {
	var n atomic.Int64
	orig := verifyDigest
	verifyDigest = func(pub crypto.PublicKey, alg keys.Algorithm, digest, sig []byte) error {
		n.Add(1)
		return orig(pub, alg, digest, sig)
	}
	t.Cleanup(func() { verifyDigest = orig })
	return &n
}

var ecdsaPool []*testSigner // the same keys for every test, so fixtures can be shared

func ecdsaKeys(t testing.TB, n int) ([]*testSigner, []Key) {
	fixtureMu.Lock()
	for len(ecdsaPool) < n {
		ecdsaPool = append(ecdsaPool, newECDSA(t, fmt.Sprint("k", len(ecdsaPool))))
	}
	pool := ecdsaPool[:n]
	fixtureMu.Unlock()
	var ss []*testSigner
	var ks []Key
	for _, s := range pool {
		fp, _ := keys.Fingerprint(s.key.Public())
		ss, ks = append(ss, s), append(ks, Key{Name: fp, Public: s.key.Public()})
	}
	return ss, ks
}

func prefetchAll(t testing.TB, st *Store, digests []string) {
	t.Helper()
	for _, d := range digests {
		if err := st.Prefetch(context.Background(), d, []string{"reg.example/app"}); err != nil {
			t.Fatal(err)
		}
	}
}

// Each (signature, key) pair is checked at most once: a reload with the same
// keys checks nothing, a new key is tried only on signatures no key made, a
// refresh that finds the same signatures checks nothing, and a bundle's key
// hint makes one check enough.
func TestStoreChecksEachPairOnce(t *testing.T) {
	ss, ks := ecdsaKeys(t, 7)
	f := &mapFetcher{ms: map[string][]signature.Manifest{}}
	var legacy, foreign, bundled []string
	for i := range 10 {
		d := testDigest(i)
		f.ms[d] = []signature.Manifest{legacyManifest(t, ss[3], d)}
		legacy = append(legacy, d)
		d = testDigest(100 + i)
		f.ms[d] = []signature.Manifest{legacyManifest(t, ss[6], d)} // a key not in force
		foreign = append(foreign, d)
		d = testDigest(200 + i)
		f.ms[d] = []signature.Manifest{bundleManifest(t, ss[4], d)}
		bundled = append(bundled, d)
	}
	n := countChecks(t)
	st := NewStore(nil, f)
	st.SetKeys(ks[:5])
	prefetchAll(t, st, legacy)
	if got := n.Load(); got < 10 || got > 10*4 {
		t.Fatalf("%d checks for 10 signatures by the 4th of 5 keys; want 10 to 40", got)
	}
	n.Store(0)
	prefetchAll(t, st, bundled)
	if got := n.Load(); got != 10 {
		t.Fatalf("%d checks for 10 hinted bundle signatures; want 10", got)
	}
	n.Store(0)
	prefetchAll(t, st, foreign)
	if got := n.Load(); got != 10*5 {
		t.Fatalf("%d checks for 10 signatures by none of 5 keys; want 50", got)
	}
	n.Store(0)
	st.SetKeys(ks[:5])
	if got := n.Load(); got != 0 {
		t.Fatalf("a reload with the same keys made %d checks", got)
	}
	st.SetKeys(ks[:6]) // one new key: tried on the 10 foreign signatures only
	if got := n.Load(); got != 10 {
		t.Fatalf("a new key cost %d checks; want 10", got)
	}
	n.Store(0)
	prefetchAll(t, st, append(legacy, bundled...)) // a refresh that finds the same
	if got := n.Load(); got != 0 {
		t.Fatalf("a refresh of known signatures made %d checks", got)
	}
	for _, d := range legacy {
		if !st.Verified(d, ks[3].Name) || st.Verified(d, ks[0].Name) {
			t.Fatalf("%s: verified by k3=%v k0=%v; want only k3", d, st.Verified(d, ks[3].Name), st.Verified(d, ks[0].Name))
		}
	}
	st.SetKeys(append(ks[:6:6], ks[6]))
	if !st.Verified(foreign[0], ks[6].Name) {
		t.Fatal("a key added by a reload did not verify its signature")
	}
	st.SetKeys(ks[:3])
	if st.Verified(legacy[0], ks[3].Name) || !strings.Contains(st.Status(legacy[0]), "signature not made by any of the keys") {
		t.Fatalf("a key no longer in force still counts: %s", st.Status(legacy[0]))
	}
}

// A reload re-verifies outside the lock: while SetKeys is in the middle of a
// check, a decision's lookup answers (from the keys in force before).
func TestSetKeysDoesNotBlockLookups(t *testing.T) {
	ss, ks := ecdsaKeys(t, 2)
	d, other := testDigest(1), testDigest(2)
	f := &mapFetcher{ms: map[string][]signature.Manifest{
		d: {legacyManifest(t, ss[0], d)}, other: {legacyManifest(t, ss[1], other)}}}
	st := NewStore(nil, f)
	st.SetKeys(ks[:1])
	prefetchAll(t, st, []string{d, other})

	inCheck, release := make(chan struct{}), make(chan struct{})
	orig := verifyDigest
	var once sync.Once
	verifyDigest = func(pub crypto.PublicKey, alg keys.Algorithm, digest, sig []byte) error {
		once.Do(func() { close(inCheck); <-release })
		return orig(pub, alg, digest, sig)
	}
	defer func() { verifyDigest = orig }()
	done := make(chan struct{})
	go func() { st.SetKeys(ks); close(done) }()
	<-inCheck
	answered := make(chan bool)
	go func() { answered <- st.Verified(d, ks[0].Name) }()
	select {
	case ok := <-answered:
		if !ok {
			t.Fatal("during a reload, a signature verified before does not count")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lookup waited for the reload's signature checks")
	}
	close(release)
	<-done
	if !st.Verified(other, ks[1].Name) {
		t.Fatal("the new key's signature is not verified after the reload")
	}
}

func logSize(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// The log keeps what was verified across restarts, Forget removes digests
// from memory and disk, and the log is compacted once mostly dead.
func TestStoreLogRestartForgetCompact(t *testing.T) {
	ss, ks := ecdsaKeys(t, 1)
	f := &mapFetcher{ms: map[string][]signature.Manifest{}}
	var ds []string
	for i := range 1500 {
		d := testDigest(i)
		f.ms[d] = []signature.Manifest{legacyManifest(t, ss[0], d)}
		ds = append(ds, d)
	}
	dir := t.TempDir()
	st := NewStore(NewDir(dir), f)
	st.SetKeys(ks)
	prefetchAll(t, st, ds)
	before := logSize(t, dir)
	prefetchAll(t, st, ds[:10]) // same signatures: nothing written
	if got := logSize(t, dir); got != before {
		t.Fatalf("a refresh of unchanged signatures grew the log from %d to %d bytes", before, got)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = NewStore(NewDir(dir))
	if err := st.PersistError(); err != nil {
		t.Fatal(err)
	}
	st.SetKeys(ks)
	if st.Len() != 1500 || !st.Load(context.Background(), ds[7]) || !st.Verified(ds[7], ks[0].Name) {
		t.Fatalf("after a restart: %d digests, %s: %s", st.Len(), ds[7], st.Status(ds[7]))
	}
	st.Retain(ds[:100])
	if st.Len() != 100 || st.Known(ds[100]) {
		t.Fatalf("Retain(100 of 1500) left %d digests", st.Len())
	}
	if got := logSize(t, dir); got >= before/2 {
		t.Fatalf("the log was not compacted: %d bytes after forgetting 1400 of 1500 digests (%d before)", got, before)
	}
	st.Forget(ds[0])
	st.Close()

	st = NewStore(NewDir(dir))
	st.SetKeys(ks)
	if st.Len() != 99 || st.Known(ds[0]) || st.Known(ds[100]) || !st.Verified(ds[99], ks[0].Name) {
		t.Fatalf("after compaction and a restart: %d digests, forgotten known: %v %v", st.Len(), st.Known(ds[0]), st.Known(ds[100]))
	}
}

// A state directory of the earlier layout (an OCI layout written by
// Dir.Put) is read once into the log and removed.
func TestStoreMigratesOCILayout(t *testing.T) {
	ss, ks := ecdsaKeys(t, 1)
	dir := t.TempDir()
	old := NewDir(dir)
	var ds []string
	for i := range 3 {
		d := testDigest(i)
		ref, _ := name.NewDigest("reg.example/app@" + d)
		if err := old.Put(ref, []signature.Manifest{legacyManifest(t, ss[0], d)}); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	st := NewStore(NewDir(dir))
	if err := st.PersistError(); err != nil {
		t.Fatal(err)
	}
	st.SetKeys(ks)
	for _, d := range ds {
		if !st.Verified(d, ks[0].Name) {
			t.Fatalf("%s after migration: %s", d, st.Status(d))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old index.json is still there (%v)", err)
	}
	st.Close()
	st = NewStore(NewDir(dir))
	st.SetKeys(ks)
	if st.Len() != 3 || !st.Verified(ds[2], ks[0].Name) {
		t.Fatalf("after a second boot: %d digests", st.Len())
	}
}

// A torn or corrupt tail is cut at boot, reported as a persistence error,
// and the records before it stay.
func TestStoreLogTornTail(t *testing.T) {
	ss, ks := ecdsaKeys(t, 1)
	d := testDigest(1)
	dir := t.TempDir()
	st := NewStore(NewDir(dir), &mapFetcher{ms: map[string][]signature.Manifest{d: {legacyManifest(t, ss[0], d)}}})
	prefetchAll(t, st, []string{d})
	st.Close()
	lf, err := os.OpenFile(filepath.Join(dir, logName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	lf.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, '{'})
	lf.Close()
	st = NewStore(NewDir(dir))
	if err := st.PersistError(); !errors.Is(err, ErrPersist) || !strings.Contains(err.Error(), "cut at byte") {
		t.Fatalf("PersistError = %v; want the cut reported", err)
	}
	st.SetKeys(ks)
	if !st.Verified(d, ks[0].Name) {
		t.Fatalf("the record before the torn tail was lost: %s", st.Status(d))
	}
}

// A full state directory (/dev/full) is a persistence error, not a fetch
// error, and what was verified counts.
func TestStoreFullStateDir(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	ss, ks := ecdsaKeys(t, 1)
	d := testDigest(1)
	dir := t.TempDir()
	if err := os.Symlink("/dev/full", filepath.Join(dir, logName)); err != nil {
		t.Fatal(err)
	}
	st := NewStore(NewDir(dir), &mapFetcher{ms: map[string][]signature.Manifest{d: {legacyManifest(t, ss[0], d)}}})
	st.SetKeys(ks)
	err := st.Prefetch(context.Background(), d, []string{"reg.example/app"})
	if !errors.Is(err, ErrPersist) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Prefetch into a full state dir = %v; want ErrPersist only", err)
	}
	if !st.Verified(d, ks[0].Name) || !errors.Is(st.PersistError(), ErrPersist) {
		t.Fatalf("verified=%v PersistError=%v", st.Verified(d, ks[0].Name), st.PersistError())
	}
}

// Failed look-ups are kept per digest within MaxErrors, their text bounded,
// and Forget drops them.
func TestStoreErrorsBounded(t *testing.T) {
	st := NewStore(nil)
	long := errors.New(strings.Repeat("x", 10*maxErrorText))
	for i := range MaxErrors + 100 {
		st.noteFetchError(testDigest(i), long)
	}
	if n := st.errs.len(); n > MaxErrors {
		t.Fatalf("%d errors kept; bound %d", n, MaxErrors)
	}
	d := testDigest(MaxErrors + 99)
	if s := st.Status(d); len(s) > 2*maxErrorText || !strings.Contains(s, "could not be fetched") {
		t.Fatalf("status of %d bytes: %.80s", len(s), s)
	}
	st.Forget(d)
	if strings.Contains(st.Status(d), "could not be fetched") {
		t.Fatal("Forget kept the error")
	}
}

// Past MaxSignaturesPerDigest, the verified signature is kept and the rest
// dropped, saying so.
func TestStoreSignaturesPerDigestBounded(t *testing.T) {
	ss, ks := ecdsaKeys(t, 2)
	d := testDigest(1)
	var ms []signature.Manifest
	for i := range MaxSignaturesPerDigest + 20 {
		m := legacyManifest(t, ss[1], d) // another key's
		m.Source = fmt.Sprint("reg/app:", i)
		ms = append(ms, m)
	}
	good := legacyManifest(t, ss[0], d)
	good.Source = "reg/app:good"
	ms = append(ms, good)
	st := NewStore(NewDir(t.TempDir()), &mapFetcher{ms: map[string][]signature.Manifest{d: ms}})
	st.SetKeys(ks[:1])
	prefetchAll(t, st, []string{d})
	st.mu.RLock()
	n := len(entryOf(st, d).checks)
	st.mu.RUnlock()
	if n > MaxSignaturesPerDigest+1 || !st.Verified(d, ks[0].Name) {
		t.Fatalf("%d checks kept (bound %d), verified=%v", n, MaxSignaturesPerDigest, st.Verified(d, ks[0].Name))
	}
}

func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapInuse returns the heap's spans in use after a GC.
func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// heapOf returns the heap that what fill builds takes once built.
func heapOf(fill func() any) int64 {
	base := heapNow()
	x := fill()
	h := int64(heapNow()) - int64(base)
	runtime.KeepAlive(x)
	return h
}

// storeOf fills a memory-only store with the digests ds.
func storeOf(t testing.TB, ks []Key, ms map[string][]signature.Manifest, ds []string) *Store {
	st := NewStore(nil, &mapFetcher{ms: ms})
	st.SetKeys(ks)
	prefetchAll(t, st, ds)
	return st
}

var (
	fixtureMu sync.Mutex
	fixtures  = map[[2]int]map[string][]signature.Manifest{}
)

// signedFixture returns n digests each signed by one of ss.
func signedFixture(t testing.TB, ss []*testSigner, n int) (map[string][]signature.Manifest, []string) {
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	ms, ok := fixtures[[2]int{n, len(ss)}]
	if !ok {
		ms = map[string][]signature.Manifest{}
		for i := range n {
			d := testDigest(i)
			ms[d] = []signature.Manifest{legacyManifest(t, ss[i%len(ss)], d)}
		}
		fixtures[[2]int{n, len(ss)}] = ms
	}
	ds := make([]string, n)
	for i := range n {
		ds[i] = testDigest(i)
	}
	return ms, ds
}

// After 9,000 of 10,000 digests are forgotten, the store's heap is within
// 10% of a store that only ever held the other 1,000.
func TestStoreHeapReturnsAfterForget(t *testing.T) {
	if testing.Short() {
		t.Skip("signs 10,000 images")
	}
	ss, ks := ecdsaKeys(t, 1)
	ms, ds := signedFixture(t, ss, 10_000)
	want := heapOf(func() any { return storeOf(t, ks, ms, ds[:1000]) })
	full := heapOf(func() any { return storeOf(t, ks, ms, ds) })
	got := heapOf(func() any {
		st := storeOf(t, ks, ms, ds)
		st.Forget(ds[1000:]...)
		return st
	})
	t.Logf("heap: 10,000 digests %d B, after forgetting 9,000 %d B, a store of 1,000 %d B", full, got, want)
	if float64(got) > 1.1*float64(want) {
		t.Fatalf("after forgetting 9,000 of 10,000 digests the store holds %d B of heap; a store of 1,000 holds %d B", got, want)
	}
}

// At boot, the key that verified a signature last time is tried first: one
// check per stored signature.
func TestStoreBootTriesLastKeyFirst(t *testing.T) {
	ss, ks := ecdsaKeys(t, 5)
	f := &mapFetcher{ms: map[string][]signature.Manifest{}}
	var ds []string
	for i := range 10 {
		d := testDigest(i)
		f.ms[d] = []signature.Manifest{legacyManifest(t, ss[4], d)}
		ds = append(ds, d)
	}
	dir := t.TempDir()
	st := NewStore(NewDir(dir), f)
	st.SetKeys(ks)
	prefetchAll(t, st, ds)
	st.Close()
	n := countChecks(t)
	st = NewStore(NewDir(dir))
	st.SetKeys(ks)
	if got := n.Load(); got != 10 || !st.Verified(ds[9], ks[4].Name) {
		t.Fatalf("%d checks to verify 10 stored signatures at boot; want 10", got)
	}
}

// Dir answers from its parsed index until index.json changes, then reads it
// again.
func TestDirRereadsAChangedIndex(t *testing.T) {
	ss, _ := ecdsaKeys(t, 1)
	dir := NewDir(t.TempDir())
	put := func(i int) name.Digest {
		ref, _ := name.NewDigest("reg.example/app@" + testDigest(i))
		if err := dir.Put(ref, []signature.Manifest{legacyManifest(t, ss[0], testDigest(i))}); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	a := put(1)
	if ms, err := dir.Fetch(context.Background(), a); err != nil || len(ms) != 1 {
		t.Fatalf("Fetch(a) = %d manifests, %v", len(ms), err)
	}
	b := put(2)
	if ms, err := dir.Fetch(context.Background(), b); err != nil || len(ms) != 1 {
		t.Fatalf("Fetch(b) after the index changed = %d manifests, %v", len(ms), err)
	}
	if ms, _ := dir.Fetch(context.Background(), a); len(ms) != 1 {
		t.Fatalf("Fetch(a) after the index changed = %d manifests", len(ms))
	}
}

// Forgetting most digests rebuilds the store from copies of what stays: the
// verdicts, the failures and what each key said of each signature survive,
// so a reload with the same keys checks nothing again.
func TestStoreForgetMostKeepsVerdicts(t *testing.T) {
	ks, f, ds := alternatelySigned(t, 40)
	st := NewStore(NewDir(t.TempDir()), f)
	st.SetKeys(ks[:1]) // the odd digests are signed by a key not in force
	prefetchAll(t, st, ds)
	st.Forget(ds[4:]...)
	if st.Len() != 4 || st.peak != 4 {
		t.Fatalf("Len %d, peak %d after forgetting 36 of 40: want 4 and 4 (the maps rebuilt)", st.Len(), st.peak)
	}
	verdictsKept(t, st, ks, ds[:4], "the rebuild")
	if !st.Verified(ds[1], ks[1].Name) {
		t.Error("digest 1 is not verified by its key once it is in force")
	}
}

// A reload with the keys in force changes nothing: no entry is re-judged
// (at 10,000 digests that was megabytes of garbage per SIGHUP).
func TestSetKeysSameKeysKeepsEntries(t *testing.T) {
	ss, ks := ecdsaKeys(t, 2)
	ms, ds := signedFixture(t, ss, 10)
	st := storeOf(t, ks, ms, ds)
	before := entryOf(st, ds[0])
	st.SetKeys(slices.Clone(ks))
	if entryOf(st, ds[0]) != before {
		t.Error("SetKeys with the same keys replaced the entries")
	}
	st.SetKeys(ks[:1])
	if entryOf(st, ds[0]) == before {
		t.Error("SetKeys with other keys kept the entries")
	}
	if st.Verified(ds[1], ks[1].Name) {
		t.Error("a digest signed by a key no longer in force is still verified")
	}
}

// Compact copies the store into fresh memory, keyed by the copies of the
// digests the caller keeps (the node's image index), and changes no answer:
// verdicts, reasons, what keys said (no check twice), the log's records.
func TestStoreCompactKeepsVerdicts(t *testing.T) {
	ks, f, ds := alternatelySigned(t, 40)
	dir := t.TempDir()
	st := NewStore(NewDir(dir), f)
	st.SetKeys(ks[:1]) // the odd digests are signed by a key not in force
	prefetchAll(t, st, ds)
	st.Compact(func(string) string { return "" }) // sha256 digests: no text to share
	verdictsKept(t, st, ks, ds, "Compact")
	fp := ks[0].Name
	before := logSize(t, dir)
	prefetchAll(t, st, ds[:10]) // same signatures: nothing written
	if got := logSize(t, dir); got != before {
		t.Errorf("a refresh of unchanged signatures after Compact grew the log from %d to %d bytes", before, got)
	}
	st.Forget(ds[0], ds[25])
	st.Close()

	st = NewStore(NewDir(dir))
	st.SetKeys(ks)
	if st.Len() != 38 || st.Known(ds[0]) || st.Known(ds[25]) || !st.Verified(ds[1], ks[1].Name) || !st.Verified(ds[26], fp) {
		t.Fatalf("after Compact, Forget and a restart: %d digests, forgotten known: %v %v", st.Len(), st.Known(ds[0]), st.Known(ds[25]))
	}
}

// alternatelySigned is n digests whose legacy signatures are made, in turn,
// by the first and the second of two keys.
func alternatelySigned(t *testing.T, n int) ([]Key, *mapFetcher, []string) {
	t.Helper()
	ss, ks := ecdsaKeys(t, 2)
	f := &mapFetcher{ms: map[string][]signature.Manifest{}}
	var ds []string
	for i := range n {
		d := testDigest(i)
		f.ms[d] = []signature.Manifest{legacyManifest(t, ss[i%2], d)}
		ds = append(ds, d)
	}
	return ks, f, ds
}

// verdictsKept checks, after what (a rebuild, Compact), that the store with
// ks[:1] in force still knows its verdicts over ds (alternatelySigned: the
// even ones verified, the odd ones refused), that a reload with the same key
// checks nothing again, and that putting ks[1] in force checks only the
// signatures no key in force had made, once each.
func verdictsKept(t *testing.T, st *Store, ks []Key, ds []string, what string) {
	t.Helper()
	for i, d := range ds {
		if got := st.Verified(d, ks[0].Name); got != (i%2 == 0) {
			t.Errorf("digest %d: Verified = %v after %s", i, got, what)
		}
	}
	if s := st.Status(ds[1]); !strings.Contains(s, ErrBadSignature.Error()) {
		t.Errorf("digest 1: Status = %q, want the bad signature", s)
	}
	n := countChecks(t)
	st.SetKeys(ks[:1])
	if got := n.Load(); got != 0 {
		t.Errorf("a reload with the same key made %d checks after %s; want 0", got, what)
	}
	st.SetKeys(ks)
	if got, want := n.Load(), int64(len(ds)/2); got != want {
		t.Errorf("the new key made %d checks on the %d signatures no key in force made; want %d", got, want, want)
	}
}

// The store and its log's index keep sha256 digests as bytes (no string of
// the caller's or their own), before and after Compact, which changes no
// answer.
func TestStoreKeepsDigestsAsBytes(t *testing.T) {
	ks, f, ds := alternatelySigned(t, 10)
	st := NewStore(NewDir(t.TempDir()), f)
	st.SetKeys(ks[:1])
	prefetchAll(t, st, ds)
	for _, compacted := range []bool{false, true} {
		if compacted {
			st.Compact(nil)
		}
		st.log.mu.Lock()
		logSHA, logText := len(st.log.spans.sha), len(st.log.spans.other)
		st.log.mu.Unlock()
		if len(st.entries.sha) != len(ds) || len(st.entries.other) != 0 || logSHA != len(ds) || logText != 0 {
			t.Errorf("compacted %v: entries %d as bytes, %d as text; log index %d and %d; want %d as bytes",
				compacted, len(st.entries.sha), len(st.entries.other), logSHA, logText, len(ds))
		}
	}
	verdictsKept(t, st, ks, ds, "Compact(nil)")
}

// KnownNow and VerifiedNow answer as Known and Verified do, and decline,
// rather than wait, while a writer holds the store.
func TestStoreAnswersNowWithoutWaiting(t *testing.T) {
	ss, ks := ecdsaKeys(t, 2)
	signed, unsigned := testDigest(1), testDigest(2)
	f := &mapFetcher{ms: map[string][]signature.Manifest{signed: {legacyManifest(t, ss[0], signed)}}}
	st := NewStore(nil, f)
	st.SetKeys(ks)
	prefetchAll(t, st, []string{signed, unsigned})
	for _, tc := range []struct {
		digest, key string
	}{{signed, ks[0].Name}, {signed, ks[1].Name}, {unsigned, ks[0].Name}, {testDigest(3), ks[0].Name}} {
		known, ok := st.KnownNow(tc.digest)
		verified, ok2 := st.VerifiedNow(tc.digest, tc.key)
		if !ok || !ok2 || known != st.Known(tc.digest) || verified != st.Verified(tc.digest, tc.key) {
			t.Errorf("%s by %s: now known=%v verified=%v (ok %v %v); waiting: %v %v", tc.digest, tc.key,
				known, verified, ok, ok2, st.Known(tc.digest), st.Verified(tc.digest, tc.key))
		}
	}
	if !st.Verified(signed, ks[0].Name) {
		t.Fatal("the signed digest is not verified")
	}
	st.mu.Lock()
	_, ok := st.KnownNow(signed)
	_, ok2 := st.VerifiedNow(signed, ks[0].Name)
	st.mu.Unlock()
	if ok || ok2 {
		t.Error("answered while a writer held the store")
	}
}
