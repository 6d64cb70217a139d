package verify

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// FuzzVerify feeds an arbitrary signature manifest and blob (what anyone
// who can push to a repository controls) to Verify, as one legacy and one
// bundle layer. It must never panic, and a signature verifies only over the
// digest asked about.
func FuzzVerify(f *testing.F) {
	ss, ks := ecdsaKeys(f, 2)
	d := testDigest(1)
	legacy := legacyManifest(f, ss[0], d)
	for _, b := range legacy.Blobs {
		f.Add(legacy.Raw, b)
	}
	bundle := bundleManifest(f, ss[1], d)
	for _, b := range bundle.Blobs {
		f.Add(bundle.Raw, b)
	}
	f.Add([]byte(`{"schemaVersion":2,"layers":[null]}`), []byte("null"))
	f.Fuzz(func(t *testing.T, raw, blob []byte) {
		// Whatever the manifest says, offer the blob under every digest it names.
		blobs := map[string][]byte{}
		if m, err := signature.ParseManifest(raw); err == nil {
			for _, l := range m.Layers {
				blobs[l.Digest] = blob
			}
		}
		res := Verify(d, []signature.Manifest{{Source: "fuzz", Raw: raw, Blobs: blobs}}, ks)
		for _, m := range res.Verified {
			if m.Digest != d {
				t.Fatalf("verified a signature over %s, asked about %s", m.Digest, d)
			}
		}
		for _, fl := range res.Failures {
			if fl.Err == nil || fl.Reason() == "" {
				t.Fatalf("a failure without a reason: %+v", fl)
			}
		}
	})
}

// FuzzReplayLog feeds arbitrary bytes as the signature log read at boot: it
// must never panic, stops at the first bad record, and reports an offset
// within the input.
func FuzzReplayLog(f *testing.F) {
	rec, _ := encodeRecord(logRecord{Digest: testDigest(1), Manifests: []logManifest{{Source: "s", Raw: []byte("{}")}}, Keys: []string{"sha256:00"}})
	forget, _ := encodeRecord(logRecord{Forget: []string{testDigest(1)}})
	f.Add(append(append([]byte{}, rec...), forget...))
	f.Add(rec[:len(rec)-3])
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		end, err := replay(bytes.NewReader(b), func(off, size int64, r logRecord) {
			if off < 0 || off+size > int64(len(b)) {
				t.Fatalf("record at %d+%d beyond %d bytes", off, size, len(b))
			}
			if _, err := json.Marshal(r); err != nil {
				t.Fatal(err)
			}
			n++
		})
		if end < 0 || end > int64(len(b)) || (err == nil && end != int64(len(b))) {
			t.Fatalf("replay ended at %d of %d (err %v)", end, len(b), err)
		}
		if err != nil && strings.TrimSpace(err.Error()) == "" {
			t.Fatal("empty error")
		}
	})
}
