package verify

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// BenchmarkSetKeysConcurrentLookups is a bundle reload over 2,000 stored
// signatures with 10 keys none of which was tried before (the worst case:
// about 11,000 public-key checks), while a decision loop looks up verdicts.
// It reports the lookups' p99 and max latency during the reload, and the
// reload's duration.
func BenchmarkSetKeysConcurrentLookups(b *testing.B) {
	ss, ks := ecdsaKeys(b, 10)
	ms, ds := signedFixture(b, ss, 2000)
	var lat []time.Duration
	var reload time.Duration
	for range b.N {
		b.StopTimer()
		st := NewStore(nil, &mapFetcher{ms: ms})
		prefetchAll(b, st, ds) // no keys yet: nothing checked
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		var mine []time.Duration
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				t0 := time.Now()
				st.Verified(ds[i%len(ds)], ks[i%len(ks)].Name)
				mine = append(mine, time.Since(t0))
			}
		}()
		b.StartTimer()
		t0 := time.Now()
		st.SetKeys(ks)
		reload += time.Since(t0)
		b.StopTimer()
		stop.Store(true)
		wg.Wait()
		if !st.Verified(ds[0], ks[0].Name) {
			b.Fatal(st.Status(ds[0]))
		}
		lat = append(lat, mine...)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-lookup-ns")
	b.ReportMetric(float64(lat[len(lat)*999/1000].Nanoseconds()), "p99.9-lookup-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-lookup-µs")
	b.ReportMetric(float64(reload.Milliseconds())/float64(b.N), "reload-ms")
}

// BenchmarkSetKeysSameKeys is the common reload (an exemption changed, the
// keys did not): no public-key check, over 10,000 stored digests.
func BenchmarkSetKeysSameKeys(b *testing.B) {
	ss, ks := ecdsaKeys(b, 10)
	ms, ds := signedFixture(b, ss, 10_000)
	st := NewStore(nil, &mapFetcher{ms: ms})
	st.SetKeys(ks)
	prefetchAll(b, st, ds)
	n := countChecks(b)
	for b.Loop() {
		st.SetKeys(ks)
	}
	if n.Load() != 0 {
		b.Fatalf("%d checks", n.Load())
	}
}

// BenchmarkVerifiedLookup is a decision's lookup at 1k and 10k digests
// (constant time: a map read).
func BenchmarkVerifiedLookup(b *testing.B) {
	ss, ks := ecdsaKeys(b, 1)
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ms, ds := signedFixture(b, ss, n)
			st := NewStore(nil, &mapFetcher{ms: ms})
			st.SetKeys(ks)
			prefetchAll(b, st, ds)
			i := 0
			for b.Loop() {
				if !st.Verified(ds[i%n], ks[0].Name) {
					b.Fatal("not verified")
				}
				i++
			}
		})
	}
}

// freshFetcher answers copies of what f holds, bytes included, with the
// source a Registry names a cosign signature by (the .sig tag of image in
// its repository, about 100 bytes, a string of its own per fetch).
type freshFetcher struct{ f SignatureFetcher }

func (f freshFetcher) Fetch(ctx context.Context, image name.Digest) ([]signature.Manifest, error) {
	ms, err := f.f.Fetch(ctx, image)
	out := make([]signature.Manifest, len(ms))
	for i, m := range ms {
		src := image.Context().Tag(signature.SignatureTag(image.DigestStr())).String()
		out[i] = signature.Manifest{Source: src, Raw: bytes.Clone(m.Raw), Blobs: map[string][]byte{}, Err: m.Err}
		for k, v := range m.Blobs {
			out[i].Blobs[strings.Clone(k)] = bytes.Clone(v)
		}
	}
	return out, err
}

// BenchmarkStoreHeapPerDigest reports the heap one verified digest (one
// ECDSA cosign signature) takes in the store, at 10,000 digests, in memory
// only and with the log (whose index of records is in memory too). Each
// fetch answers fresh copies, as a registry does, so that what the store
// keeps of them counts. span-bytes are what the heap's spans in use grew by:
// the live bytes and the free slots beside them that the fetches' garbage
// left (resident all the same), before and after Compact. The digests are
// the caller's until Compact, which copies them as the daemon has it do
// (the node's image index keeps none as strings): compacted-bytes and
// compacted-span-bytes include what the store keeps of each digest itself,
// which is what a daemon holds.
func BenchmarkStoreHeapPerDigest(b *testing.B) {
	ss, ks := ecdsaKeys(b, 1)
	ms, ds := signedFixture(b, ss, 10_000)
	for _, persisted := range []bool{false, true} {
		b.Run(map[bool]string{false: "memory", true: "persisted"}[persisted], func(b *testing.B) {
			var per, spans, compacted, compactedHeap float64
			for range b.N {
				var dir *Dir
				if persisted {
					dir = NewDir(b.TempDir())
				}
				heap, inuse := heapNow(), heapInuse()
				st := NewStore(dir, freshFetcher{&mapFetcher{ms: ms}})
				st.SetKeys(ks)
				prefetchAll(b, st, ds)
				per = float64(int64(heapNow())-int64(heap)) / float64(len(ds))
				spans = float64(int64(heapInuse())-int64(inuse)) / float64(len(ds))
				st.Compact(nil)
				compacted = float64(int64(heapInuse())-int64(inuse)) / float64(len(ds))
				compactedHeap = float64(int64(heapNow())-int64(heap)) / float64(len(ds))
				runtime.KeepAlive(st)
			}
			b.ReportMetric(per, "bytes/digest")
			b.ReportMetric(spans, "span-bytes/digest")
			b.ReportMetric(compacted, "compacted-span-bytes/digest")
			b.ReportMetric(compactedHeap, "compacted-bytes/digest")
		})
	}
}

// BenchmarkStoreBoot is a restart with N digests verified on disk: reading
// the log and verifying every signature with the keys in force (10 keys,
// the one that verified last time tried first). ns/digest should stay flat
// from 100 to 10,000.
func BenchmarkStoreBoot(b *testing.B) {
	ss, ks := ecdsaKeys(b, 10)
	for _, n := range []int{100, 1000, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ms, ds := signedFixture(b, ss, n)
			dir := b.TempDir()
			st := NewStore(NewDir(dir), &mapFetcher{ms: ms})
			st.SetKeys(ks)
			prefetchAll(b, st, ds)
			st.Close()
			for b.Loop() {
				st := NewStore(NewDir(dir))
				st.SetKeys(ks)
				if st.Len() != n || !st.Verified(ds[n-1], ks[(n-1)%10].Name) {
					b.Fatalf("%d digests; %s", st.Len(), st.Status(ds[n-1]))
				}
				st.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/digest")
		})
	}
}

// BenchmarkVerify100x10 is the pure Verify of 100 signatures against 10
// keys: legacy signatures carry no key hint (up to 10 checks each), Sigstore
// bundles carry cosign's publicKey hint (1 check each).
func BenchmarkVerify100x10(b *testing.B) {
	ss, ks := ecdsaKeys(b, 10)
	d := testDigest(1)
	for _, format := range []string{FormatLegacy, FormatBundle} {
		var ms []signature.Manifest
		for i := range 100 {
			s := ss[9-i%5] // the last keys: the worst case without a hint
			if format == FormatBundle {
				ms = append(ms, bundleManifest(b, s, d))
			} else {
				ms = append(ms, legacyManifest(b, s, d))
			}
		}
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				if res := Verify(d, ms, ks); len(res.Verified) != 100 {
					b.Fatal(res.Err())
				}
			}
		})
	}
}
