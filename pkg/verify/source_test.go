package verify

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// sourceTexts are sources of digest d of every shape: the short form (a .sig
// tag of d, in any repository) and texts kept whole.
func sourceTexts(d, other string) []string {
	tag := signature.SignatureTag(d)
	return []string{
		"reg.example/app:" + tag,
		"other.example:5000/team/app:" + tag, // a repository other than the image's
		":" + tag,                            // an empty repository
		tag,                                  // no repository: kept whole
		"reg.example/app:" + signature.SignatureTag(other), // another digest's tag
		"reg.example/app:" + tag + "x",
		"reg.example/app@" + other,          // a referrer
		"referrers of reg.example/app@" + d, // a failed referrers read
		"/var/lib/sigs:app@" + other,        // a signature directory
		"\x01reg.example/app:" + tag,        // the encoding's bytes, in texts
		"\x00reg.example/app:" + tag, "\x01", "\x00", "\x00\x01", "\x01\x00x",
		"", "input", boundSource, "bench",
	}
}

// A source gives back its text byte for byte, and two sources of a digest
// are equal exactly when their texts are: reuse, isFresh and bound compare
// them so.
func TestSourceExact(t *testing.T) {
	d, other := testDigest(1), testDigest(2)
	texts := sourceTexts(d, other)
	for _, a := range texts {
		sa := sourceOf(d, a)
		if got := sa.text(d); got != a {
			t.Errorf("sourceOf(%q).text = %q", a, got)
		}
		if got := sa.clone().text(d); got != a {
			t.Errorf("sourceOf(%q).clone().text = %q", a, got)
		}
		for _, b := range texts {
			if eq := sa == sourceOf(d, b); eq != (a == b) {
				t.Errorf("sourceOf(%q) == sourceOf(%q) is %v", a, b, eq)
			}
		}
	}
	// The short form keeps no byte of the digest, and one copy of a
	// repository for all its images.
	s1 := sourceOf(d, "reg.example/app:"+signature.SignatureTag(d))
	s2 := sourceOf(other, "reg.example/app:"+signature.SignatureTag(other))
	if len(s1.enc) != len("\x01reg.example/app") || s1 != s2 || s1.clone() != s1 {
		t.Errorf("a .sig source is held as %q and %q; want the repository, shared", s1.enc, s2.enc)
	}
}

// namedFetcher answers f's manifests for the digest under the source texts
// of src (fresh strings, as a registry's are), one manifest per text.
type namedFetcher struct {
	f   *mapFetcher
	src func(image name.Digest) []string
}

func (n namedFetcher) Fetch(ctx context.Context, image name.Digest) ([]signature.Manifest, error) {
	ms, err := n.f.Fetch(ctx, image)
	var out []signature.Manifest
	for i, text := range n.src(image) {
		m := ms[i%len(ms)]
		out = append(out, signature.Manifest{Source: strings.Clone(text), Raw: m.Raw, Blobs: m.Blobs, Err: m.Err})
	}
	return out, err
}

// Whatever shape its source has, a signature is reported (Status, Verify's
// Failure and Match) under its exact text, before and after Compact and a
// restart; a refresh that finds it again checks nothing again; and
// repositories merge as their sources say.
func TestStoreSourcesKeepTheirText(t *testing.T) {
	ss, ks := ecdsaKeys(t, 2)
	d, other := testDigest(1), testDigest(2)
	for _, text := range sourceTexts(d, other) {
		t.Run(strings.ToValidUTF8(text, "?"), func(t *testing.T) {
			bad := &mapFetcher{ms: map[string][]signature.Manifest{d: {legacyManifest(t, ss[1], d)}}}
			f := namedFetcher{bad, func(name.Digest) []string { return []string{text} }}
			dir := t.TempDir()
			st := NewStore(NewDir(dir), f)
			st.SetKeys(ks[:1]) // ss[1]'s key is not in force: the signature is refused
			prefetchAll(t, st, []string{d})
			want := text + ": " + badSignature(ks[:1]).Error()
			if got := st.Status(d); got != want {
				t.Fatalf("Status = %q; want %q", got, want)
			}
			n := countChecks(t)
			prefetchAll(t, st, []string{d})
			if got := n.Load(); got != 0 {
				t.Errorf("a refresh of the same signature made %d checks", got)
			}
			st.Compact(nil)
			if got := st.Status(d); got != want {
				t.Errorf("after Compact, Status = %q; want %q", got, want)
			}
			st.Close()
			st = NewStore(NewDir(dir))
			st.SetKeys(ks[:1])
			if got := st.Status(d); got != want {
				t.Errorf("after a restart, Status = %q; want %q", got, want)
			}
			st.Close()

			res := Verify(d, []signature.Manifest{{Source: text, Raw: bad.ms[d][0].Raw, Blobs: bad.ms[d][0].Blobs},
				{Source: text, Err: errors.New("unreadable")}}, ks)
			if len(res.Verified) != 1 || res.Verified[0].Source != text || len(res.Failures) != 1 || res.Failures[0].Source != text {
				t.Errorf("Verify reports %+v", res)
			}
		})
	}

	// Signatures live per repository: a look-up in another repository keeps
	// what the first gave, and finding it there again replaces it.
	good := &mapFetcher{ms: map[string][]signature.Manifest{d: {legacyManifest(t, ss[0], d)}}}
	byRepo := map[string][]string{"reg.example/a": {"reg.example/a:" + signature.SignatureTag(d)}}
	f := namedFetcher{good, func(image name.Digest) []string {
		if r, ok := byRepo[image.Context().String()]; ok {
			return r
		}
		return nil
	}}
	st := NewStore(nil, f)
	st.SetKeys(ks[:1])
	for _, repo := range []string{"reg.example/a", "reg.example/b"} {
		if err := st.Prefetch(context.Background(), d, []string{repo}); err != nil {
			t.Fatal(err)
		}
		if !st.Verified(d, ks[0].Name) {
			t.Fatalf("after a look-up in %s: %s", repo, st.Status(d))
		}
	}
	st.mu.RLock()
	n := len(entryOf(st, d).checks)
	st.mu.RUnlock()
	if err := st.Prefetch(context.Background(), d, []string{"reg.example/a"}); err != nil || n != 1 {
		t.Fatalf("%d checks held; %v", n, err)
	}
	st.mu.RLock()
	n = len(entryOf(st, d).checks)
	st.mu.RUnlock()
	if n != 1 {
		t.Errorf("finding a signature again in its repository holds %d checks of it; want 1", n)
	}
}

// A digest's verdict names every key that verified it, in the order of its
// signatures and each once, whether one key did (held as an index in the
// keys in force) or several; Compact and a change of keys keep it so.
func TestStoreVerdictKeys(t *testing.T) {
	ss, ks := ecdsaKeys(t, 3)
	one, two := testDigest(1), testDigest(2)
	f := &mapFetcher{ms: map[string][]signature.Manifest{
		one: {legacyManifest(t, ss[1], one)},
		two: {legacyManifest(t, ss[2], two), legacyManifest(t, ss[0], two), legacyManifest(t, ss[2], two)},
	}}
	st := NewStore(nil, f)
	st.SetKeys(ks)
	prefetchAll(t, st, []string{one, two})
	check := func(what string, d string, want ...string) {
		t.Helper()
		wantStatus := "verified signatures by key(s) " + strings.Join(want, ", ")
		if len(want) == 0 {
			wantStatus = "signature not made by any of the keys"
		}
		if got := st.Status(d); !strings.HasPrefix(got, wantStatus) && !strings.Contains(got, wantStatus) {
			t.Errorf("%s: Status = %q; want %q", what, got, wantStatus)
		}
		for _, k := range ks {
			if got := st.Verified(d, k.Name); got != slices.Contains(want, k.Name) {
				t.Errorf("%s: Verified(%s) = %v", what, k.Name, got)
			}
		}
	}
	check("one key", one, ks[1].Name)
	check("two keys", two, ks[2].Name, ks[0].Name)
	st.Compact(nil)
	check("one key after Compact", one, ks[1].Name)
	check("two keys after Compact", two, ks[2].Name, ks[0].Name)
	st.SetKeys([]Key{ks[2], ks[1]}) // another order: indexes in the keys change
	check("one key, keys reordered", one, ks[1].Name)
	check("two keys, one left", two, ks[2].Name)
	st.SetKeys(ks[:1])
	check("no key left", one)
	check("one key left", two, ks[0].Name)
}

// entryOf is what st holds of digest d (nil: nothing).
func entryOf(st *Store, d string) *storeEntry {
	e, _ := st.entries.get(d)
	return e
}
