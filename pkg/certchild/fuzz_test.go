package certchild

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The frame reader never returns more than its limit, and what it returns
// is what the length prefix said; a reply it decodes re-encodes.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 9, '{', '"', 'i', 'd', '"', ':', '1', '}', ' '})
	f.Add([]byte{0, 0, 0, 3, 'x', 'y'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			b, err := readFrame(r, maxReply)
			if err != nil {
				return
			}
			if len(b) > maxReply {
				t.Fatalf("frame of %d bytes over the %d limit", len(b), maxReply)
			}
			var rep reply
			if json.Unmarshal(b, &rep) != nil {
				continue
			}
			var w bytes.Buffer
			out, _ := json.Marshal(rep)
			if err := writeFrame(&w, out); err != nil {
				t.Fatal(err)
			}
			back, err := readFrame(&w, maxReply+len(out))
			if err != nil || !bytes.Equal(back, out) {
				t.Fatalf("round trip: %q, %v; want %q", back, err, out)
			}
		}
	})
}
