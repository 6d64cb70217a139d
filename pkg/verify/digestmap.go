package verify

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/nri-csig/nri-csig/internal/digestbytes"
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

// idOf is digest text d as digestMap keys it.
func idOf(d string) digestID {
	if sum, ok := digestbytes.SHA256(d); ok {
		return digestID{sha: sum, isSHA: true}
	}
	return digestID{other: d}
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
