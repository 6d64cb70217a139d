package verify

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// ErrPersist marks a failure to keep signatures on disk (a read-only or full
// state directory, a corrupt log): what was verified stays in memory and
// counts; only a restart would have to fetch again. It is never a failure
// to fetch signatures.
var ErrPersist = errors.New("signature state not persisted")

// The signature log is the store's state on disk: one record per change,
// appended, the last record of a digest winning. A record is
//
//	uint32 length (little endian) | uint32 CRC-32C of the body | body (JSON logRecord)
//
// so that a torn write (power loss, full disk) is detected at boot and the
// log is cut there. Records are not fsynced one by one: the state is
// re-derivable from the registry, and losing the last second of records only
// means fetching those signatures again. The log is compacted (rewritten
// with one record per live digest) when it holds twice as many bytes as its
// live records, so its size stays proportional to the node's images.
const (
	logName = "signatures.log"
	// maxRecord bounds one record's body (JSON, blobs in base64): a digest's
	// signatures are kept up to MaxBytesPerDigest, which encodes well under it.
	maxRecord = 4 << 20
	// syncEvery is how often appended records are fsynced, at most.
	syncEvery = time.Second
	// minCompact is the log size below which it is never compacted.
	minCompact = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// logRecord is one change: the signatures of Digest (replacing what an
// earlier record said), or the digests Forget removed.
type logRecord struct {
	Digest    string        `json:"digest,omitempty"`
	Manifests []logManifest `json:"manifests,omitempty"`
	// Keys are the fingerprints that verified when the record was written:
	// tried first at boot, trusted no more than any other hint.
	Keys   []string `json:"keys,omitempty"`
	Forget []string `json:"forget,omitempty"`
}

type logManifest struct {
	Source string            `json:"source"`
	Raw    []byte            `json:"raw"`
	Blobs  map[string][]byte `json:"blobs,omitempty"`
}

// span is where a digest's last record is (32 bytes: the index holds one
// per digest of the node).
type span struct {
	off  int64
	size uint32 // header included; a record is within maxRecord
	// content is the store's content hash of the record, its first 20
	// bytes (zero: unknown): it only spares rewriting a record unchanged.
	content [20]byte
}

func (s span) len() int64 { return int64(s.size) }

// contentKey is what a span keeps of a content hash.
func contentKey(content [sha256.Size]byte) (k [20]byte) {
	copy(k[:], content[:])
	return k
}

// sigLog is the open signature log. Its methods serialise on mu; none is
// called with the store's lock held.
type sigLog struct {
	mu       sync.Mutex
	path     string
	f        *os.File // nil: read-only, records are not kept
	end      int64
	spans    digestMap[span] // digest -> its last record
	live     int64           // bytes of the records in spans
	lastSync time.Time
}

// openLog opens (creating) the log in dir, migrates the earlier layout (an
// OCI layout index of signature manifests) into it once, and replays it:
// apply is called for every record of a digest, in log order (a later one
// replaces what an earlier one said), and forget for every digest a record
// forgets. Records are applied as they are read, so that replay holds one
// record at a time rather than every digest's (tens of MiB at 10,000
// images). The error wraps ErrPersist; the log is then usable as far as it
// could be read (f nil when it cannot be written).
func openLog(dir string, apply func(digest string, ms []signature.Manifest, keys []string), forget func(digest string)) (*sigLog, error) {
	l := &sigLog{path: filepath.Join(dir, logName), spans: newDigestMap[span](0)}
	var errs []error
	if err := os.MkdirAll(dir, 0o700); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat(l.path); errors.Is(err, os.ErrNotExist) {
		if err := migrate(dir, l.path); err != nil {
			errs = append(errs, fmt.Errorf("migrating %s: %w", dir, err))
		}
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		errs = append(errs, err)
		if f, err = os.Open(l.path); err != nil {
			return l, persistErr(errors.Join(errs...))
		}
		defer f.Close()
	} else {
		l.f = f
	}
	end, err := replay(f, func(off, size int64, r logRecord) {
		for _, d := range r.Forget {
			if s, ok := l.spans.get(d); ok {
				l.live -= s.len()
				l.spans.del(d)
				forget(d)
			}
		}
		if r.Digest == "" {
			return
		}
		if s, ok := l.spans.get(r.Digest); ok {
			l.live -= s.len()
		}
		l.spans.set(r.Digest, span{off: off, size: uint32(size)})
		l.live += size
		apply(r.Digest, r.manifests(), r.Keys)
	})
	l.end = end
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w; the log is cut at byte %d and the signatures after it will be fetched again", l.path, err, end))
		if l.f != nil {
			if err := l.f.Truncate(end); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return l, persistErr(errors.Join(errs...))
	}
	return l, nil
}

func persistErr(err error) error { return fmt.Errorf("%w: %w", ErrPersist, err) }

func (r logRecord) manifests() []signature.Manifest {
	out := make([]signature.Manifest, len(r.Manifests))
	for i, m := range r.Manifests {
		out[i] = signature.Manifest{Source: m.Source, Raw: m.Raw, Blobs: m.Blobs}
		if out[i].Blobs == nil {
			out[i].Blobs = map[string][]byte{}
		}
	}
	return out
}

// replay reads records from r until the end or the first bad one, and
// returns the offset after the last good record.
func replay(r io.Reader, fn func(off, size int64, rec logRecord)) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				return off, nil
			}
			return off, fmt.Errorf("truncated record header: %w", err)
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n > maxRecord {
			return off, fmt.Errorf("record of %d bytes, more than %d", n, maxRecord)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return off, fmt.Errorf("truncated record: %w", err)
		}
		if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			return off, errors.New("record checksum mismatch")
		}
		var rec logRecord
		if err := json.Unmarshal(body, &rec); err != nil {
			return off, fmt.Errorf("record: %w", err)
		}
		size := int64(8 + n)
		fn(off, size, rec)
		off += size
	}
}

func encodeRecord(r logRecord) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if len(body) > maxRecord {
		return nil, fmt.Errorf("record for %s of %d bytes, more than %d", r.Digest, len(body), maxRecord)
	}
	b := make([]byte, 8, 8+len(body))
	binary.LittleEndian.PutUint32(b[:4], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(body, crcTable))
	return append(b, body...), nil
}

func toLog(ms []signature.Manifest) []logManifest {
	out := make([]logManifest, 0, len(ms))
	for _, m := range ms {
		if m.Err != nil || m.Raw == nil {
			continue // nothing to keep: the failure is re-derived on the next fetch
		}
		out = append(out, logManifest{Source: m.Source, Raw: m.Raw, Blobs: m.Blobs})
	}
	return out
}

// rekey rebuilds the index of records keyed by key(digest) (see
// Store.Compact).
func (l *sigLog) rekey(key func(string) string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	spans := newDigestMap[span](l.spans.len())
	for d, s := range l.spans.all {
		spans.setID(d.rekey(key), s)
	}
	l.spans = spans
}

// holds reports whether the last record of digest is of that content.
func (l *sigLog) holds(digest string, content [sha256.Size]byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.spans.get(digest)
	return ok && s.content == contentKey(content)
}

// put appends the signatures of digest (of content, as the store hashes
// them), replacing its earlier record.
func (l *sigLog) put(digest string, content [sha256.Size]byte, ms []signature.Manifest, keys []string) error {
	b, err := encodeRecord(logRecord{Digest: digest, Manifests: toLog(ms), Keys: keys})
	if err != nil {
		return persistErr(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.appendLocked(b); err != nil {
		return err
	}
	if s, ok := l.spans.get(digest); ok {
		l.live -= s.len()
	}
	l.spans.set(digest, span{l.end - int64(len(b)), uint32(len(b)), contentKey(content)})
	l.live += int64(len(b))
	return l.maybeCompactLocked()
}

// forget appends one record removing digests (those the log holds).
func (l *sigLog) forget(digests []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var held []string
	for _, d := range digests {
		if s, ok := l.spans.get(d); ok {
			held = append(held, d)
			l.live -= s.len()
			l.spans.del(d)
		}
	}
	if len(held) == 0 {
		return nil
	}
	b, err := encodeRecord(logRecord{Forget: held})
	if err != nil {
		return persistErr(err)
	}
	if err := l.appendLocked(b); err != nil {
		return err
	}
	return l.maybeCompactLocked()
}

// get reads back the manifests last recorded for digest (nil if none).
func (l *sigLog) get(digest string) ([]signature.Manifest, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.spans.get(digest)
	if !ok || l.f == nil {
		return nil, nil
	}
	b := make([]byte, s.len())
	if _, err := l.f.ReadAt(b, s.off); err != nil {
		return nil, persistErr(err)
	}
	var rec logRecord
	if err := json.Unmarshal(b[8:], &rec); err != nil {
		return nil, persistErr(err)
	}
	return rec.manifests(), nil
}

// appendLocked writes b at the end of the log. A failed or short write
// leaves the end where it was, so the next record overwrites the debris.
func (l *sigLog) appendLocked(b []byte) error {
	if l.f == nil {
		return persistErr(fmt.Errorf("%s cannot be written", l.path))
	}
	if _, err := l.f.WriteAt(b, l.end); err != nil {
		return persistErr(err)
	}
	l.end += int64(len(b))
	if time.Since(l.lastSync) >= syncEvery {
		l.lastSync = time.Now()
		if err := l.f.Sync(); err != nil {
			return persistErr(err)
		}
	}
	return nil
}

// maybeCompactLocked rewrites the log with only the live records once the
// dead ones outweigh them: amortised, each record is copied a bounded number
// of times.
func (l *sigLog) maybeCompactLocked() error {
	if l.end < minCompact || l.end < 2*l.live {
		return nil
	}
	tmp := l.path + ".tmp"
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return persistErr(err)
	}
	fail := func(err error) error {
		nf.Close()
		os.Remove(tmp)
		return persistErr(fmt.Errorf("compacting %s: %w", l.path, err))
	}
	w := bufio.NewWriterSize(nf, 256<<10)
	spans := newDigestMap[span](l.spans.len())
	var off int64
	for d, s := range l.spans.all {
		if _, err := io.Copy(w, io.NewSectionReader(l.f, s.off, s.len())); err != nil {
			return fail(err)
		}
		spans.setID(d.rekey(strings.Clone), span{off, s.size, s.content}) // fresh memory: see Store.Forget
		off += s.len()
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := nf.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fail(err)
	}
	syncDir(filepath.Dir(l.path))
	l.f.Close()
	l.f, l.spans, l.end, l.live, l.lastSync = nf, spans, off, off, time.Now()
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// close syncs and closes the log.
func (l *sigLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil {
		return persistErr(err)
	}
	return nil
}

// migrate writes the signatures of an earlier state directory (an OCI
// layout: index.json naming signature manifests, read with Dir) into a new
// log at path, then removes the layout: it is read once, at the first boot
// of this version.
func migrate(dir, path string) error {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return nil // nothing to migrate
	}
	all, err := NewDir(dir).all()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, d := range all.order {
		b, err := encodeRecord(logRecord{Digest: d, Manifests: toLog(all.manifests[d])})
		if err != nil {
			continue // over the bound: fetched again
		}
		if _, err := w.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	for _, p := range []string{"index.json", "oci-layout", "blobs"} {
		os.RemoveAll(filepath.Join(dir, p))
	}
	return nil
}
