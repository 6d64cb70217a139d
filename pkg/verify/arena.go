package verify

import (
	"strings"
	"unsafe"
)

// arena hands out a compaction's copies (Compact, Forget) from arrays
// allocated once. The Go heap does not move objects: copied one by one, the
// store's entries land in the free slots of memory spans that boot's garbage
// (manifests read, answers decoded) or the digests forgotten before left
// half empty, and a span goes back to the system only when nothing in it
// lives. Copied together, they fill arrays of their own (large objects, no
// size-class rounding), and the arrays they replace are freed whole once
// nothing points into them: 480 -> 348 bytes of spans per digest in memory,
// 605 -> 466 persisted (BenchmarkStoreHeapPerDigest, compacted). An array
// lives while one of its elements does; the next compaction (after most
// digests left) moves the survivors again. Entries added between
// compactions are allocated one by one.
type arena struct {
	entries []storeEntry
	checks  []sigCheck
	lists   []*sigCheck
	data    []byte // the current chunk of bytes: signatures and sources
}

// newArena reserves room for copies of es.
func newArena(es digestMap[*storeEntry]) *arena {
	var checks int
	for _, e := range es.all {
		checks += len(e.checks)
	}
	return &arena{entries: make([]storeEntry, 0, es.len()), checks: make([]sigCheck, 0, checks),
		lists: make([]*sigCheck, 0, checks)}
}

// take returns the next free element of *s, nil when it is full. *s never
// grows, so the pointers handed out stay valid.
func take[T any](s *[]T) *T {
	n := len(*s)
	if n == cap(*s) {
		return nil
	}
	*s = (*s)[:n+1]
	return &(*s)[n]
}

// carve returns the next n free elements of *s with no room to grow (an
// append to them reallocates instead of writing over the next ones), nil
// when there are not n.
func carve[T any](s *[]T, n int) []T {
	l := len(*s)
	if n == 0 || cap(*s)-l < n {
		return nil
	}
	*s = (*s)[:l+n]
	return (*s)[l : l+n : l+n]
}

func (a *arena) entry() *storeEntry {
	if a != nil {
		if e := take(&a.entries); e != nil {
			return e
		}
	}
	return &storeEntry{}
}

func (a *arena) check() *sigCheck {
	if a != nil {
		if c := take(&a.checks); c != nil {
			return c
		}
	}
	return &sigCheck{}
}

func (a *arena) checkList(n int) []*sigCheck {
	if a != nil {
		if l := carve(&a.lists, n); l != nil {
			return l
		}
	}
	return make([]*sigCheck, n)
}

// room returns n bytes of the arena's current chunk, starting a new chunk
// (64 KiB, a large object with its own spans) when it has not that many left.
func (a *arena) room(n int) []byte {
	if cap(a.data)-len(a.data) < n {
		a.data = make([]byte, 0, max(64<<10, n))
	}
	return carve(&a.data, n)
}

// str returns a copy of s in the arena. Strings are immutable and these
// bytes are written once, here.
func (a *arena) str(s string) string {
	if a == nil || s == "" {
		return strings.Clone(s)
	}
	d := a.room(len(s))
	copy(d, s)
	return unsafe.String(&d[0], len(d))
}
