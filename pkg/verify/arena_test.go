package verify

import "testing"

// What the arena hands out is independent memory: a slice carved from it
// cannot grow into its neighbour, a string copied into it equals the
// original, and past its reserved counts it allocates one by one.
func TestArenaCopiesAreIndependent(t *testing.T) {
	es := map[string]*storeEntry{"a": {checks: []*sigCheck{{check: check{sigs: [][]byte{{1}}}}}}}
	a := newArena(es)
	first, second := a.bytes([]byte{1, 2}), a.bytes([]byte{3, 4})
	first = append(first, 9) // must reallocate, not overwrite second
	if second[0] != 3 || second[1] != 4 || len(first) != 3 {
		t.Fatalf("an append to one copy wrote over the next: %v %v", first, second)
	}
	if s := a.str("sha256:abc"); s != "sha256:abc" {
		t.Fatalf("str = %q", s)
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
	if got := none.bytes([]byte{5}); len(got) != 1 || got[0] != 5 {
		t.Fatalf("nil arena bytes = %v", got)
	}
}
