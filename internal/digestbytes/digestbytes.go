// Package digestbytes reads a sha256 digest's text ("sha256:" and 64
// lower-case hex digits, every image digest in practice) as its 32 bytes,
// for the tables that key digests by their bytes (pkg/imagestore's index,
// pkg/verify's store): a decision looks a digest up, so this runs on the NRI
// request path, without allocating.
package digestbytes

import (
	"crypto/sha256"
	"strings"
)

// SHA256 returns the bytes of digest text d, and false when d is not
// "sha256:" and 64 lower-case hex digits (an upper-case digit included: the
// bytes would not print back as d).
func SHA256(d string) (sum [sha256.Size]byte, ok bool) {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 2*sha256.Size {
		return sum, false
	}
	for w := range 8 {
		// 8 hex digits at a time, as the bytes of one word (a digit at a
		// time cost more than the map read it serves).
		c := h[8*w : 8*w+8]
		x := uint64(c[0]) | uint64(c[1])<<8 | uint64(c[2])<<16 | uint64(c[3])<<24 |
			uint64(c[4])<<32 | uint64(c[5])<<40 | uint64(c[6])<<48 | uint64(c[7])<<56
		v, ok := unhex8(x)
		if !ok {
			return [sha256.Size]byte{}, false
		}
		// v's bytes are the digits' values, first digit lowest: t's even
		// bytes are the pairs', high digit first.
		t := v<<4 | v>>8
		sum[4*w], sum[4*w+1], sum[4*w+2], sum[4*w+3] = byte(t), byte(t>>16), byte(t>>32), byte(t>>48)
	}
	return sum, true
}

// unhex8 decodes the 8 bytes of x, each a lower-case hex digit, into their
// values (a byte each); ok is false when one is anything else.
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
