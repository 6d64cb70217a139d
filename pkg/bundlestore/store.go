// Package bundlestore is the node's policy bundle store: it reads bundles
// from a file or directory and from an OCI reference, checks their detached
// signature, serial and validity dates, keeps the last good bundle in the
// state directory and reports every reload. The model and its checks are
// package policy's; OCI transport is package bundleoci's.
package bundlestore

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/internal/atomicfile"
	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/bundleoci"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// StateFile is the name of the last good bundle in the store's state directory.
const StateFile = "last-good-bundle.json"

// DefaultInterval is how often a Store polls its sources unless WithInterval says otherwise.
const DefaultInterval = 30 * time.Second

// DefaultFetchTimeout bounds one read of one source unless WithFetchTimeout
// says otherwise: a registry that accepts connections and never answers
// costs one timeout, never a stalled node.
const DefaultFetchTimeout = 20 * time.Second

// maxBackoff bounds how far a failing source pushes the next poll away.
const maxBackoff = 15 * time.Minute

// ErrNoBundle: no source delivered an acceptable bundle and there is no last
// good bundle on disk.
var ErrNoBundle = errors.New("no policy bundle")

// Clock tells the time; tests inject a fake one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Outcome is what a reload did.
type Outcome string

const (
	// Loaded: a new bundle from a source is in force.
	Loaded Outcome = "loaded"
	// Restored: at boot, the last good bundle from the state directory is in force.
	Restored Outcome = "restored"
	// Refused: a bundle was refused; the one in force (if any) stays.
	Refused Outcome = "refused"
	// Unavailable: a source could not be read; the bundle in force stays.
	Unavailable Outcome = "unavailable"
)

// ReloadEvent reports one reload attempt that changed something or went
// wrong. Polls that find nothing new report nothing; a refusal or an
// unavailable source is reported once until its content or error changes.
type ReloadEvent struct {
	Time    time.Time
	Source  string
	Outcome Outcome
	// Serial and Digest describe the candidate bundle (zero when unknown).
	Serial uint64
	Digest string
	// InForce is the serial in force after the event (0: none).
	InForce uint64
	// Err says why a bundle was refused or a source unavailable; for Loaded,
	// a failure to save the last good bundle (the new bundle is in force
	// anyway, but a reboot would start from an older one).
	Err error
}

// Store holds the policy bundle in force on a node. It reads bundles from
// its sources (a file or directory, an OCI artifact), verifies their
// signature when a bundle-signing key is configured, refuses rollbacks
// (a serial lower than the one in force, or other content at the same
// serial), keeps the last good bundle in its state directory for the next
// boot, and polls its sources for hot reload. A refused bundle never
// replaces the one in force.
//
// Current is safe to call from any goroutine at any time. No lock is held
// while a source is read: a hung source never delays Reconfigure, Kick or
// another poll.
type Store struct {
	current atomic.Pointer[inForce]
	clock   Clock         // as set by WithClock; never changes
	kick    chan struct{} // asks Run to poll now

	mu       sync.Mutex // guards what follows; never held during network I/O
	o        storeOptions
	gen      uint64            // raised by Reconfigure: results of older polls are dropped
	lastSeen map[string]string // source -> id of the content or error last reported
	// floor is the serial of an expired last good bundle found at boot: it
	// is not put in force, but nothing older is accepted either.
	floor      uint64
	cancelPoll context.CancelFunc // cancels Run's poll in flight
}

type inForce struct {
	b      *policy.Bundle
	digest string
	source string
}

type storeOptions struct {
	sources      []source
	signingKey   crypto.PublicKey
	stateDir     string
	interval     time.Duration
	fetchTimeout time.Duration
	clock        Clock
	log          *slog.Logger
	onReload     func(ReloadEvent)
	rand         func() float64 // in [0,1): jitter of the poll interval
}

// StoreOption configures NewStore.
type StoreOption func(*storeOptions) error

// WithFileSource adds a file or directory source. A directory (e.g. a
// mounted ConfigMap) must hold exactly one *.yaml or *.yml bundle file;
// hidden entries are ignored. The signature is the bundle file's name plus
// ".sig", beside it.
func WithFileSource(path string) StoreOption {
	return func(o *storeOptions) error {
		if path == "" {
			return errors.New("file source: empty path")
		}
		o.sources = append(o.sources, &fileSource{path: path})
		return nil
	}
}

// WithSigningKey makes the store refuse bundles that are not signed by pub.
// The default is to accept unsigned bundles (and ignore signatures).
func WithSigningKey(pub crypto.PublicKey) StoreOption {
	return func(o *storeOptions) error {
		if _, err := keys.KeySpec(pub); err != nil {
			return fmt.Errorf("bundle-signing key: %w", err)
		}
		o.signingKey = pub
		return nil
	}
}

// WithStateDir keeps the last good bundle in dir (created when missing). Without
// it the node starts with no bundle when its sources are unavailable, and
// rollback protection does not survive a restart.
func WithStateDir(dir string) StoreOption {
	return func(o *storeOptions) error { o.stateDir = dir; return nil }
}

// WithInterval sets how often Run polls the sources. The default is DefaultInterval.
func WithInterval(d time.Duration) StoreOption {
	return func(o *storeOptions) error {
		if d <= 0 {
			return fmt.Errorf("poll interval %v: give a positive duration", d)
		}
		o.interval = d
		return nil
	}
}

// WithFetchTimeout bounds every read of one source. The default is
// DefaultFetchTimeout.
func WithFetchTimeout(d time.Duration) StoreOption {
	return func(o *storeOptions) error {
		if d <= 0 {
			return fmt.Errorf("fetch timeout %v: give a positive duration", d)
		}
		o.fetchTimeout = d
		return nil
	}
}

// WithClock sets the clock that stamps events and judges expiry. The default
// is the system clock.
func WithClock(c Clock) StoreOption {
	return func(o *storeOptions) error { o.clock = c; return nil }
}

// WithLogger logs reloads to l. The default discards logs.
func WithLogger(l *slog.Logger) StoreOption {
	return func(o *storeOptions) error { o.log = l; return nil }
}

// WithReloadHook calls f, synchronously, for every ReloadEvent: the daemon
// writes its audit record from there. f must not call back into the Store's
// reload methods.
func WithReloadHook(f func(ReloadEvent)) StoreOption {
	return func(o *storeOptions) error { o.onReload = f; return nil }
}

// NewStore returns a store with no bundle in force; call Load, then Run. It
// does no I/O. At least one source is required.
func NewStore(opts ...StoreOption) (*Store, error) {
	o := storeOptions{interval: DefaultInterval, fetchTimeout: DefaultFetchTimeout, clock: systemClock{},
		log: slog.New(slog.DiscardHandler), rand: rand.Float64}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("policy store: %w", err)
		}
	}
	if len(o.sources) == 0 {
		return nil, errors.New("policy store: no bundle source; configure a file, directory or OCI reference")
	}
	return &Store{o: o, clock: o.clock, lastSeen: map[string]string{}, kick: make(chan struct{}, 1)}, nil
}

// Reconfigure makes the store read next's sources with next's signing key,
// interval and fetch timeout from now on (next, built by NewStore, is not
// used otherwise). The bundle in force and the rollback floor stay; every
// source is judged again under the new settings at Run's next poll, which
// starts at once: a poll in flight is canceled.
func (s *Store) Reconfigure(next *Store) {
	next.mu.Lock()
	n := next.o
	next.mu.Unlock()
	s.mu.Lock()
	s.o.sources, s.o.signingKey, s.o.interval, s.o.fetchTimeout = n.sources, n.signingKey, n.interval, n.fetchTimeout
	s.gen++
	s.lastSeen = map[string]string{}
	s.mu.Unlock()
	s.Kick()
}

// Kick makes Run poll now, canceling a poll in flight (a source that hangs
// until its fetch timeout). It never blocks.
func (s *Store) Kick() {
	s.mu.Lock()
	if s.cancelPoll != nil {
		s.cancelPoll()
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // a poll is already asked for
	}
}

// Current returns the bundle in force, or nil before the first successful
// Load. The bundle must not be modified.
func (s *Store) Current() *policy.Bundle {
	if c := s.current.Load(); c != nil {
		return c.b
	}
	return nil
}

// Status describes the bundle in force, for health checks and metrics.
type Status struct {
	Serial uint64 // 0 when no bundle is in force
	Digest string // sha256 of the bundle bytes
	Source string // file path, reference@digest, or the state file
	// Expires is the bundle's signed expiry (zero: none); Freshness is
	// policy.Fresh, policy.Stale or policy.Expired at the store's clock (empty: no bundle).
	Expires   time.Time
	Freshness policy.Freshness
}

// Status returns what is in force now. It takes no lock: a reload hook may call it.
func (s *Store) Status() Status {
	c := s.current.Load()
	if c == nil {
		return Status{}
	}
	now := s.clock.Now()
	return Status{Serial: c.b.Serial, Digest: c.digest, Source: c.source, Expires: c.b.Expires, Freshness: c.b.FreshnessAt(now)}
}

// Load brings the store up at boot: it restores the last good bundle from
// the state directory, then reads every source once. It returns an error
// wrapping ErrNoBundle when no bundle is in force afterwards.
//
// Give ctx a deadline to bound boot: a source still unread when it passes
// is reported unavailable, and Run reads it again later.
func (s *Store) Load(ctx context.Context) error {
	s.mu.Lock()
	s.restore()
	s.mu.Unlock()
	s.poll(ctx)
	if s.current.Load() == nil {
		where := "no state directory is configured"
		if s.o.stateDir != "" {
			where = "no last good bundle in " + s.o.stateDir
		}
		return fmt.Errorf("%w: no source delivered an acceptable bundle and %s; see the reload events for why", ErrNoBundle, where)
	}
	return nil
}

// Run polls the sources about every interval until ctx is done, and at once
// after Kick or Reconfigure. The interval is jittered (±20%) so that many
// nodes do not poll in step, and doubles, up to 15 minutes, for each poll in
// a row that found a source unavailable. It returns nil when ctx is canceled.
func (s *Store) Run(ctx context.Context) error {
	failures := 0
	for {
		s.mu.Lock()
		wait := pollDelay(s.o.interval, failures, s.o.rand())
		s.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-s.kick:
			t.Stop()
			failures = 0
		}
		pctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		s.cancelPoll = cancel
		s.mu.Unlock()
		if s.poll(pctx) {
			failures++
		} else {
			failures = 0
		}
		s.mu.Lock()
		s.cancelPoll = nil
		s.mu.Unlock()
		cancel()
	}
}

// pollDelay is the wait before the next poll: interval doubled for each
// failed poll in a row (at most maxBackoff, never less than interval), then
// spread by ±20% with r in [0,1).
func pollDelay(interval time.Duration, failures int, r float64) time.Duration {
	d := interval
	for i := 0; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, max(maxBackoff, interval))
	return time.Duration(float64(d) * (0.8 + 0.4*r))
}

// fetched is what a source delivered.
type fetched struct {
	name string // file path or reference@digest, for messages
	data []byte
	sig  []byte // nil when absent
	id   string // identifies the content, to skip what was already judged
}

// source is somewhere bundles come from. fetch returns nil, nil when the
// content identified by last has not changed.
type source interface {
	String() string
	fetch(ctx context.Context, last string) (*fetched, error)
}

// poll reads every source once, each within the fetch timeout and with no
// lock held, and judges what they delivered under the lock. It reports
// whether a source was unavailable. A poll canceled (by Kick, Reconfigure or
// shutdown) reports nothing more; one whose ctx deadline passed reports the
// sources it could not read.
func (s *Store) poll(ctx context.Context) (failed bool) {
	s.mu.Lock()
	gen, sources, timeout := s.gen, s.o.sources, s.o.fetchTimeout
	last := make(map[string]string, len(sources))
	for _, src := range sources {
		last[src.String()] = s.lastSeen[src.String()]
	}
	s.mu.Unlock()
	for _, src := range sources {
		key := src.String()
		fctx, cancel := context.WithTimeout(ctx, timeout)
		f, err := src.fetch(fctx, last[key])
		if err != nil && fctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no answer within the fetch timeout of %v: %w", timeout, err)
		}
		cancel()
		if errors.Is(ctx.Err(), context.Canceled) {
			return failed
		}
		s.mu.Lock()
		if s.gen != gen { // reconfigured meanwhile: this source may be gone
			s.mu.Unlock()
			return failed
		}
		if err != nil && !errors.Is(err, policy.ErrTooLarge) {
			failed = true
		}
		s.judge(key, f, err)
		s.mu.Unlock()
	}
	return failed
}

// judge reports or considers what one source delivered; s.mu is held.
func (s *Store) judge(key string, f *fetched, err error) {
	if err != nil {
		id := "error:" + err.Error()
		if s.lastSeen[key] != id { // report a failing source once, not every poll
			s.lastSeen[key] = id
			outcome := Unavailable
			if errors.Is(err, policy.ErrTooLarge) {
				outcome = Refused // what the source holds can never be accepted
			}
			s.emit(ReloadEvent{Source: key, Outcome: outcome, Err: err})
		}
		return
	}
	if f == nil {
		return
	}
	// A bundle not valid yet is judged again at every poll (the node's clock
	// will get there), and reported once.
	pending := "not-yet-valid:" + f.id
	again := s.lastSeen[key] == pending
	s.lastSeen[key] = f.id
	if err := s.consider(key, f, again); errors.Is(err, policy.ErrNotYetValid) {
		s.lastSeen[key] = pending
	}
}

// consider judges a candidate and puts it in force when acceptable; it
// returns why the candidate was refused by check. quiet skips reporting a
// refusal already reported.
func (s *Store) consider(key string, f *fetched, quiet bool) error {
	digest := policy.BundleDigest(f.data)
	refuse := func(serial uint64, err error) {
		if !quiet {
			s.emit(ReloadEvent{Source: key, Outcome: Refused, Serial: serial, Digest: digest, Err: err})
		}
	}
	b, err := s.check(f)
	if err != nil {
		var serial uint64
		if b != nil {
			serial = b.Serial
		}
		refuse(serial, err)
		return err
	}
	quiet = false
	if b.Serial <= s.floor && s.current.Load() == nil {
		refuse(b.Serial, fmt.Errorf("serial %d is not above serial %d of the expired last good bundle: refusing a rollback; publish the bundle with a serial above %d",
			b.Serial, s.floor, s.floor))
		return nil
	}
	if cur := s.current.Load(); cur != nil {
		switch {
		case cur.digest == digest:
			return nil // the same bundle, e.g. from a second source
		case b.Serial < cur.b.Serial:
			refuse(b.Serial, fmt.Errorf("serial %d is lower than serial %d in force: refusing a rollback; publish the bundle with a serial above %d",
				b.Serial, cur.b.Serial, cur.b.Serial))
			return nil
		case b.Serial == cur.b.Serial:
			refuse(b.Serial, fmt.Errorf("serial %d is already in force with other content (%s); raise spec.serial to publish a change (the nri-csig CLI does on every edit)",
				b.Serial, cur.digest))
			return nil
		}
	}
	b.Prepare() // index exemptions and revocations now, not in the first decision's budget
	s.current.Store(&inForce{b: b, digest: digest, source: f.name})
	ev := ReloadEvent{Source: key, Outcome: Loaded, Serial: b.Serial, Digest: digest}
	if err := s.saveState(f); err != nil {
		ev.Err = fmt.Errorf("bundle is in force, but saving it as the last good bundle failed (a reboot would start from an older one): %w", err)
	}
	s.emit(ev)
	return nil
}

// check verifies, parses and dates a candidate. A bundle that is signed and
// well formed but outside its validity comes back with an error wrapping
// policy.ErrExpired or policy.ErrNotYetValid.
func (s *Store) check(f *fetched) (*policy.Bundle, error) {
	if s.o.signingKey != nil {
		if _, err := policy.VerifyBundle(f.data, f.sig, s.o.signingKey); err != nil {
			if errors.Is(err, policy.ErrUnsigned) {
				return nil, fmt.Errorf("%w: this node only accepts bundles signed by its bundle-signing key; sign it with 'nri-csig bundle sign --key REF' and publish the .sig beside it", err)
			}
			return nil, err
		}
	}
	b, err := policy.ParseBundle(f.name, f.data)
	if err != nil {
		return nil, err
	}
	if err := b.ValidAt(s.o.clock.Now()); err != nil {
		return b, err
	}
	return b, nil
}

// state is the last good bundle as saved in the state directory.
type state struct {
	Source    string    `json:"source"`
	SavedAt   time.Time `json:"savedAt"`
	Bundle    string    `json:"bundle"`
	Signature string    `json:"signature,omitempty"`
}

func (s *Store) saveState(f *fetched) error {
	if s.o.stateDir == "" {
		return nil
	}
	data, err := json.Marshal(state{Source: f.name, SavedAt: s.o.clock.Now().UTC(), Bundle: string(f.data), Signature: string(f.sig)})
	if err != nil {
		return err
	}
	// The state directory is the node's own; a first boot may find it missing.
	if err := os.MkdirAll(s.o.stateDir, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.o.stateDir, StateFile), data, 0o600)
}

// restore puts the last good bundle in force, checked as strictly as a new
// one: the state directory may have been tampered with, or the node's
// signing key changed since it was saved.
func (s *Store) restore() {
	if s.o.stateDir == "" {
		return
	}
	path := filepath.Join(s.o.stateDir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		s.emit(ReloadEvent{Source: path, Outcome: Unavailable, Err: fmt.Errorf("read last good bundle: %w", err)})
		return
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		s.emit(ReloadEvent{Source: path, Outcome: Refused, Err: fmt.Errorf("last good bundle is corrupt: %w; delete %s to start from the sources alone", err, path)})
		return
	}
	f := &fetched{name: path + " (last good bundle from " + st.Source + ")", data: []byte(st.Bundle)}
	if st.Signature != "" {
		f.sig = []byte(st.Signature)
	}
	b, err := s.check(f)
	digest := policy.BundleDigest(f.data)
	if err != nil {
		ev := ReloadEvent{Source: path, Outcome: Refused, Digest: digest, Err: err}
		if b != nil && errors.Is(err, policy.ErrExpired) {
			// Signed by the node's key, only too old: it is no longer enforced,
			// but it still bars older bundles.
			s.floor, ev.Serial = b.Serial, b.Serial
		}
		s.emit(ev)
		return
	}
	b.Prepare() // index exemptions and revocations now, not in the first decision's budget
	s.current.Store(&inForce{b: b, digest: digest, source: f.name})
	s.emit(ReloadEvent{Source: path, Outcome: Restored, Serial: b.Serial, Digest: digest})
}

func (s *Store) emit(ev ReloadEvent) {
	ev.Time = s.o.clock.Now()
	if c := s.current.Load(); c != nil {
		ev.InForce = c.b.Serial
	}
	attrs := []any{"source", ev.Source, "outcome", ev.Outcome, "serial", ev.Serial, "digest", ev.Digest, "in_force", ev.InForce}
	switch {
	case ev.Outcome == Refused:
		// Loudly: an operator published something the node will not enforce.
		s.o.log.Error("policy bundle refused; the bundle in force stays", append(attrs, "reason", ev.Err)...)
	case ev.Err != nil:
		s.o.log.Warn("policy bundle source problem", append(attrs, "reason", ev.Err)...)
	default:
		s.o.log.Info("policy bundle in force", attrs...)
	}
	if s.o.onReload != nil {
		s.o.onReload(ev)
	}
}

// fileSource reads a bundle file, or the single bundle file of a directory.
type fileSource struct{ path string }

func (f *fileSource) String() string { return f.path }

func (f *fileSource) fetch(_ context.Context, last string) (*fetched, error) {
	path, err := f.bundlePath()
	if err != nil {
		return nil, err
	}
	data, err := readLimited(path, policy.MaxBundleSize)
	if err != nil {
		return nil, err
	}
	sig, err := readLimited(path+policy.SignatureSuffix, policy.MaxSignatureSize)
	if errors.Is(err, fs.ErrNotExist) {
		sig, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	// Hashing a file of a few kilobytes is cheaper than being fooled by an
	// mtime that did not change (ConfigMap updates swap symlinks).
	h := sha256.New()
	h.Write(data)
	h.Write([]byte{0})
	h.Write(sig)
	id := hex.EncodeToString(h.Sum(nil))
	if id == last {
		return nil, nil
	}
	return &fetched{name: path, data: data, sig: sig, id: id}, nil
}

func (f *fileSource) bundlePath() (string, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("bundle source: %w", err)
	}
	if !fi.IsDir() {
		return f.path, nil
	}
	ents, err := os.ReadDir(f.path)
	if err != nil {
		return "", fmt.Errorf("bundle source: %w", err)
	}
	var found []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		found = append(found, n)
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("bundle source %s: no *.yaml bundle file in the directory; put the bundle (and its .sig) there", f.path)
	case 1:
		return filepath.Join(f.path, found[0]), nil
	}
	return "", fmt.Errorf("bundle source %s: several bundle files (%s); a directory must hold exactly one", f.path, strings.Join(found, ", "))
}

func readLimited(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is %w: more than the %d bytes allowed", path, policy.ErrTooLarge, limit)
	}
	return data, nil
}

// WithOCISource adds an OCI artifact source: the store polls ref (a tag, or
// a digest) at its interval, fetches the artifact when the manifest digest
// changed, and judges it like any other bundle.
func WithOCISource(ref string, opts ...bundleoci.RegistryOption) StoreOption {
	return func(so *storeOptions) error {
		r, err := bundleoci.ParseRef(ref)
		if err != nil {
			return err
		}
		so.sources = append(so.sources, &ociSource{raw: ref, ref: r, client: bundleoci.Client(opts...)})
		return nil
	}
}

type ociSource struct {
	raw    string // as configured, for reload events
	ref    name.Reference
	client *registry.Client // one for the source's life: one transport, one handshake
}

func (s *ociSource) String() string { return s.raw }

func (s *ociSource) fetch(ctx context.Context, last string) (*fetched, error) {
	data, sig, digest, changed, err := bundleoci.Poll(ctx, s.client, s.ref, last)
	if err != nil || !changed {
		return nil, err
	}
	return &fetched{name: s.raw + "@" + digest, data: data, sig: sig, id: digest}, nil
}
