package imagestore

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Keys whose 8 bytes the table's map is keyed by are the same (a manifest
// can name any digest) are each found, replaced and deleted on their own.
func TestTableKeysSharingTheirShortHash(t *testing.T) {
	type v struct{ k key }
	tb := newTable(func(x *v) key { return x.k })
	a := keyOf(digest.FromString("a").String())
	b, c := a, a
	b[20], c[30] = b[20]^1, c[30]^1 // same short(), other keys
	va, vb, vc := &v{a}, &v{b}, &v{c}
	tb.set(a, va)
	tb.set(b, vb)
	tb.set(c, vc)
	for _, w := range []*v{va, vb, vc} {
		if got, ok := tb.get(w.k); !ok || got != w {
			t.Errorf("get(%x) = %v %v", w.k, got, ok)
		}
	}
	if tb.len() != 3 {
		t.Errorf("len = %d, want 3", tb.len())
	}
	tb.del(a)
	if _, ok := tb.get(a); ok {
		t.Error("a deleted key is found")
	}
	if got, ok := tb.get(b); !ok || got != vb {
		t.Errorf("after deleting a, get(b) = %v %v", got, ok)
	}
	vb2 := &v{b}
	tb.set(b, vb2)
	if got, _ := tb.get(b); got != vb2 || tb.len() != 2 {
		t.Errorf("set(b) did not replace it: %v, len %d", got, tb.len())
	}
	n := 0
	for range tb.all {
		n++
	}
	if n != 2 {
		t.Errorf("all yields %d values, want 2", n)
	}
}

// keySHA256 and keyOther keys never meet: a sha256 digest whose bytes are
// the hash of another digest's text is another key.
func TestKeyKinds(t *testing.T) {
	other := "sha512:" + strings.Repeat("ab", 64)
	ko := keyOf(other)
	forged := keyOf(digest.FromString(other).String()) // sha256 of the text, as a sha256 digest
	if ko == forged || ko[0] != keyOther || forged[0] != keySHA256 {
		t.Errorf("keys %x and %x", ko, forged)
	}
	d := digest.FromString("x").String()
	if k := keyOf(d); k[0] != keySHA256 || k.sha256String() != d {
		t.Errorf("keyOf(%s) = %x, text %s", d, k, k.sha256String())
	}
	if k := keyOf(strings.ToUpper(d[:7]) + d[7:]); k[0] != keyOther {
		t.Errorf("a digest that is not lower-case sha256 text got key %x", k)
	}
}

// Digests of other algorithms, and record names that only look like image
// IDs, are indexed, resolved and removed with their exact text.
func TestOtherDigestsKeptWhole(t *testing.T) {
	n := newNode(t)
	x, _ := newIndex(t, n)
	cfg := "sha512:" + strings.Repeat("c", 128)
	man := "sha384:" + strings.Repeat("d", 96)
	chain := "sha512:" + strings.Repeat("e", 128)
	idName := "sha256:" + strings.Repeat("F", 64) // upper case: no digest
	x.mu.Lock()
	for _, name := range []string{"reg.example/odd:1", "reg.example/odd@" + man, idName} {
		x.add(&walkedRecord{name: name, repo: Repository(name), leads: []lead{{config: cfg, digests: []string{man}}}},
			map[string]string{cfg: chain}, nil)
	}
	x.mu.Unlock()
	ds, repos, err := x.Resolve(context.Background(), cfg)
	if err != nil || !reflect.DeepEqual(ds, []string{man}) || !reflect.DeepEqual(repos, map[string][]string{man: {"reg.example/odd"}}) {
		t.Errorf("Resolve = %v %v %v", ds, repos, err)
	}
	if cs := x.ConfigsOf(man); !reflect.DeepEqual(cs, []string{cfg}) {
		t.Errorf("ConfigsOf = %v", cs)
	}
	if ch, ok := x.ChainID(cfg); !ok || ch != chain {
		t.Errorf("ChainID = %q %v", ch, ok)
	}
	if cs := x.ConfigsForChainID(chain); !reflect.DeepEqual(cs, []string{cfg}) {
		t.Errorf("ConfigsForChainID = %v", cs)
	}
	if c := x.RecordCandidates("reg.example/odd@" + man); len(c) != 1 || c[0].Digest != man {
		t.Errorf("RecordCandidates = %v", c)
	}
	if x.Len() != 3 {
		t.Errorf("Len = %d, want 3", x.Len())
	}
	if m, kind := x.find(idName); m == nil || kind != byConfig || x.str(m.id.key) != idName {
		t.Errorf("the upper-case ID-like name is held as %v %v, want as an ID kept whole", m, kind)
	}
	x.mu.Lock()
	for _, name := range []string{"reg.example/odd:1", "reg.example/odd@" + man, idName} {
		x.remove(name)
	}
	x.mu.Unlock()
	if ds, _, _ := x.Resolve(context.Background(), cfg); ds != nil || x.Len() != 0 || len(x.long) != 0 {
		t.Errorf("after removal: %v, %d records, %d texts kept", ds, x.Len(), len(x.long))
	}
}

// The CRI's three records of one image share one image value; a record of
// the same image from another repository gets its own.
func TestRecordsOfOnePullShareAnImage(t *testing.T) {
	n := newNode(t)
	m, cfg := n.image("reg.example/a:1", "a")
	n.record("other.example/copy:2", m)
	x, _ := newIndex(t, n)
	ci, _ := x.configs.get(keyOf(cfg.Digest.String()))
	if ci == nil || len(ci.images) != 2 {
		t.Fatalf("config holds %v, want two images (reg.example/a's records, other.example's)", ci)
	}
	for _, name := range []string{"reg.example/a:1", "reg.example/a@" + m.Digest.String(), cfg.Digest.String()} {
		if got, _ := x.find(name); got == nil || got != ci.images[0] && got != ci.images[1] {
			t.Errorf("%s is in no image of its config", name)
		}
	}
	a, _ := x.find("reg.example/a:1")
	if b, _ := x.find("reg.example/a@" + m.Digest.String()); a != b {
		t.Error("the tag and repo@digest records of one pull are in two images")
	}
	if c, _ := x.find("other.example/copy:2"); c == a {
		t.Error("a record of another repository joined reg.example/a's image")
	}
}
