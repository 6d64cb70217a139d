package imagestore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/nri-csig/nri-csig/internal/digestbytes"
)

// key is a digest as a fixed-size value, so that the index keeps 33 bytes
// of each config digest, image digest and chain ID where a string took 80
// (71 bytes in the next size class) and a 16-byte header. The first byte
// says what the rest is:
//
//   - keySHA256: the 32 bytes of a "sha256:<64 lower-case hex>" digest;
//   - keyOther: the SHA-256 of any other string (another algorithm, or a
//     record name that only looks like an ID), which the index keeps whole
//     in Index.long to give it back.
//
// The tag keeps the two apart: a manifest may name any sha256 value as its
// config, including the hash of another digest's text.
type key [1 + sha256.Size]byte

const (
	keySHA256 = 1
	keyOther  = 2
)

// keyOf returns the key of digest text s.
func keyOf(s string) key {
	var k key
	if sum, ok := digestbytes.SHA256(s); ok {
		k[0] = keySHA256
		copy(k[1:], sum[:])
		return k
	}
	k[0] = keyOther
	sum := sha256.Sum256([]byte(s))
	copy(k[1:], sum[:])
	return k
}

// sha256String is the text of a keySHA256 key.
func (k key) sha256String() string {
	var b [len("sha256:") + 2*sha256.Size]byte
	copy(b[:], "sha256:")
	hex.Encode(b[len("sha256:"):], k[1:])
	return string(b[:])
}

// short is what a table's map is keyed by: 8 bytes of the key, spread
// uniformly for honest digests.
func (k key) short() uint64 { return binary.LittleEndian.Uint64(k[1:9]) }

// table finds values by key with a map whose slots hold 8 bytes of the key
// and a pointer (16 bytes, where a whole key and a pointer take 48); each
// value holds its whole key (of returns it), which a lookup compares. A key
// whose 8 bytes another key already has (a manifest can name any digest)
// is kept whole in over, looked up first: every lookup stays one or two
// map reads.
type table[V comparable] struct {
	m    map[uint64]V
	over map[key]V
	of   func(V) key
}

func newTable[V comparable](of func(V) key) table[V] {
	return table[V]{m: map[uint64]V{}, of: of}
}

func (t *table[V]) get(k key) (V, bool) {
	if v, ok := t.over[k]; ok {
		return v, true
	}
	if v, ok := t.m[k.short()]; ok && t.of(v) == k {
		return v, true
	}
	var zero V
	return zero, false
}

// set adds k or replaces its value.
func (t *table[V]) set(k key, v V) {
	if _, ok := t.over[k]; ok {
		t.over[k] = v
		return
	}
	h := k.short()
	if o, ok := t.m[h]; ok && t.of(o) != k {
		if t.over == nil {
			t.over = map[key]V{}
		}
		t.over[k] = v
		return
	}
	t.m[h] = v
}

func (t *table[V]) del(k key) {
	if _, ok := t.over[k]; ok {
		delete(t.over, k)
		return
	}
	if o, ok := t.m[k.short()]; ok && t.of(o) == k {
		delete(t.m, k.short())
	}
}

func (t *table[V]) len() int { return len(t.m) + len(t.over) }

// all yields every value.
func (t *table[V]) all(yield func(V) bool) {
	for _, v := range t.over {
		if !yield(v) {
			return
		}
	}
	for _, v := range t.m {
		if !yield(v) {
			return
		}
	}
}
