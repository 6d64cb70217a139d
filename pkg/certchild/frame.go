package certchild

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// Frame bounds. A request carries one signature blob (at most
// signature.MaxBundleSize, base64 in JSON) and the witness's trust; a reply
// carries a verdict and a reason cut to maxReason.
const (
	maxTrust   = 1 << 20
	maxRequest = 2*signature.MaxBundleSize + 2*maxTrust
	maxReply   = 16 << 10
	maxReason  = 4 << 10
)

// errFrameTooLarge: a frame's length prefix is over the bound.
var errFrameTooLarge = errors.New("frame larger than allowed")

// writeFrame writes b with its 4-byte big-endian length.
func writeFrame(w io.Writer, b []byte) error {
	buf := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

// readFrame reads one frame of at most limit bytes. io.EOF means the stream
// ended between frames.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("truncated frame header: %w", err)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errFrameTooLarge, n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("truncated frame: %w", err)
	}
	return b, nil
}
