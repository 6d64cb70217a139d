package verify

import (
	"strings"
	"testing"
)

// What the arena hands out is independent memory: a slice carved from it
// cannot grow into its neighbour, strings copied into it equal their
// originals, and past its reserved counts it allocates one by one.
func TestArenaCopiesAreIndependent(t *testing.T) {
	es := newDigestMap[*storeEntry](1)
	es.set("sha256:"+strings.Repeat("ab", 32), &storeEntry{checks: []*sigCheck{{}}})
	a := newArena(es)
	first, second := a.str("sha256:abc"), a.str("reg/app:tag")
	if first != "sha256:abc" || second != "reg/app:tag" {
		t.Fatalf("str = %q, %q", first, second)
	}
	if e1, e2 := a.entry(), a.entry(); e1 == nil || e2 == nil || e1 == e2 {
		t.Fatalf("entries past the reserved count: %p %p", e1, e2)
	}
	if l := a.checkList(1); len(l) != 1 || cap(l) != 1 {
		t.Fatalf("checkList(1) = len %d cap %d", len(l), cap(l))
	}
	if l := a.checkList(3); len(l) != 3 { // beyond what was reserved
		t.Fatalf("checkList(3) = len %d", len(l))
	}
	var none *arena // compaction without an arena copies one by one
	if got := none.str("x"); got != "x" {
		t.Fatalf("nil arena str = %q", got)
	}
}
