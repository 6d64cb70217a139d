package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// digestMap is a map keyed by image digest that keeps a sha256 digest
// ("sha256:<64 lower-case hex>", every image digest in practice) as its 32
// bytes in the map's slot, where a string key took a 16-byte header and the
// digest's text (80 bytes in its size class) beside it; any other digest
// text is kept whole in a map of its own. The two maps never alias: a text
// is in one or the other by its shape alone.
type digestMap[V any] struct {
	sha   map[[sha256.Size]byte]V
	other map[string]V
}

// digestID is a digest as digestMap keys it.
type digestID struct {
	sha   [sha256.Size]byte
	other string // the text, when not a sha256 digest
	isSHA bool
}

func idOf(d string) digestID {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 2*sha256.Size {
		return digestID{other: d}
	}
	var id digestID
	for w := range 8 {
		// A decision looks a digest up: 8 hex digits at a time, as the
		// bytes of one word (a digit at a time cost more than the map).
		c := h[8*w : 8*w+8]
		x := uint64(c[0]) | uint64(c[1])<<8 | uint64(c[2])<<16 | uint64(c[3])<<24 |
			uint64(c[4])<<32 | uint64(c[5])<<40 | uint64(c[6])<<48 | uint64(c[7])<<56
		v, ok := unhex8(x)
		if !ok {
			return digestID{other: d}
		}
		// v's bytes are the digits' values, first digit lowest: t's even
		// bytes are the pairs', high digit first.
		t := v<<4 | v>>8
		id.sha[4*w], id.sha[4*w+1], id.sha[4*w+2], id.sha[4*w+3] = byte(t), byte(t>>16), byte(t>>32), byte(t>>48)
	}
	id.isSHA = true
	return id
}

// unhex8 decodes the 8 bytes of x, each a lower-case hex digit, into their
// values (a byte each); ok is false when one is anything else, upper-case
// digits included (the digest would not print back the same).
func unhex8(x uint64) (uint64, bool) {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	if x&high != 0 {
		return 0, false
	}
	// With each byte below 0x80, adding 0x80-lo sets a byte's high bit
	// exactly when it is lo or more, without carrying into the next.
	ge := func(lo uint64) uint64 { return (x + (0x80-lo)*ones) & high }
	digit := ge('0') &^ ge('9'+1)
	lower := ge('a') &^ ge('f'+1)
	if digit|lower != high {
		return 0, false
	}
	return x&(0x0f*ones) + (lower>>7)*9, true
}

// String is the digest's text.
func (id digestID) String() string {
	if !id.isSHA {
		return id.other
	}
	return "sha256:" + hex.EncodeToString(id.sha[:])
}

func newDigestMap[V any](n int) digestMap[V] {
	return digestMap[V]{sha: make(map[[sha256.Size]byte]V, n)}
}

func (m *digestMap[V]) get(d string) (V, bool) { return m.getID(idOf(d)) }

func (m *digestMap[V]) getID(id digestID) (V, bool) {
	if id.isSHA {
		v, ok := m.sha[id.sha]
		return v, ok
	}
	v, ok := m.other[id.other]
	return v, ok
}

func (m *digestMap[V]) set(d string, v V) { m.setID(idOf(d), v) }

// setID sets id's value; a text key is kept as given (the caller's copy).
func (m *digestMap[V]) setID(id digestID, v V) {
	if id.isSHA {
		m.sha[id.sha] = v
		return
	}
	if m.other == nil {
		m.other = map[string]V{}
	}
	m.other[id.other] = v
}

func (m *digestMap[V]) del(d string) {
	if id := idOf(d); id.isSHA {
		delete(m.sha, id.sha)
	} else {
		delete(m.other, id.other)
	}
}

func (m *digestMap[V]) len() int { return len(m.sha) + len(m.other) }

// all yields every digest and its value, in no order.
func (m *digestMap[V]) all(yield func(digestID, V) bool) {
	for k, v := range m.sha {
		if !yield(digestID{sha: k, isSHA: true}, v) {
			return
		}
	}
	for k, v := range m.other {
		if !yield(digestID{other: k}, v) {
			return
		}
	}
}

// rekey returns id with its text (if any) replaced by key(text).
func (id digestID) rekey(key func(string) string) digestID {
	if !id.isSHA {
		id.other = key(id.other)
	}
	return id
}
