package imagestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// ImageLister lists containerd image records (images.Store has this method).
// When it also has images.Store's Get, Update reads one record by name.
type ImageLister interface {
	List(ctx context.Context, filters ...string) ([]images.Image, error)
}

type imageGetter interface {
	Get(ctx context.Context, name string) (images.Image, error)
}

// Index is the node's images in one containerd namespace. It is built once
// (Build, or the first lookup) with one List of the image records, and kept
// current with Update on every image event. Lookups are map reads whose cost
// does not grow with the number of images. It is safe for concurrent use.
type Index struct {
	images    ImageLister
	content   content.Provider
	namespace string
	log       *slog.Logger

	// sem serializes builds and updates (they read containerd's stores); a
	// channel so that waiting for it can be abandoned with a context.
	sem     chan struct{}
	built   atomic.Bool
	skipped atomic.Uint64
	// following is set by Follow: the first build is then its own (after it
	// subscribed), and lookups wait for it (firstBuild closes) instead of
	// listing the records a second time.
	following  atomic.Bool
	firstBuild chan struct{}
	firstOnce  sync.Once

	// The node has three records per image (tag, repo@digest, image ID),
	// all leading to the same digests: they share one image. Digests are
	// keys (33 bytes, not strings), the tables' map slots hold 8 bytes of
	// them, and only the names that are not "<repo>@<digest>" or an image
	// ID are kept as strings: the others are found through the digest or
	// config they name. (1.1 KB of heap per image before, with one struct
	// and one string per record and digest strings; 2.9 KB with inner maps.)
	mu       sync.RWMutex
	named    map[string]*image  // records by name, but for refs and IDs
	configs  table[*configInfo] // config digest -> the images leading to it
	digests  table[*digestInfo] // image digest -> the images leading to it
	byChain  table[*configInfo] // chain ID -> the first of its configs (they are linked)
	long     map[key]string     // the text of keyOther keys in use
	records  int                // image records indexed
	problems map[string]int     // skipped record or descriptor -> records that have it
	// changed is closed (and replaced) each time records are added, so that a
	// resolution that found nothing can wait for an image event in flight.
	changed chan struct{}
	waiting atomic.Int32 // resolutions waiting in awaitConfig (tests watch it)
	// peak is the number of records at its highest since the maps were last
	// rebuilt: Go maps never give back their buckets, so remove rebuilds
	// them once most records left.
	peak int
}

// configInfo is one config digest of the node.
type configInfo struct {
	key   key
	chain key // rootfs chain ID (zero when unreadable)
	// sameChain is the next config with the same chain ID (nearly every
	// chain has one config: a list costs nothing then).
	sameChain *configInfo
	// images lead to it, or have a record named by its ID.
	images []*image
}

// digestInfo is one image digest (manifest or index) of the node.
type digestInfo struct {
	key    key
	images []*image // the images leading to it
}

// image is what image records with the same target lead to, with their
// names: a record is in one image, and an image holds the records that
// walked to the same digests with the same problems, at most one
// "<prefix>@<digest>" name and one image ID among them.
type image struct {
	// leads are the (config, image digest) pairs of its records: a manifest
	// and the indexes above it, each with the manifest's config.
	leads []pair
	// repo is the repository of its names other than the ID (one for all),
	// "" when they are not references.
	repo string
	// named are its records in Index.named (nearly always the one tag).
	named []string
	// ref, if set, names a record prefix@ref: ref is one of leads' digests.
	ref    *digestInfo
	prefix string
	// id, if set, names a record by this config's ID ("sha256:<config>").
	id *configInfo
	// problems are what could not be read below its records (nil nearly
	// always).
	problems *[]problem
}

// pair is one image digest of a record with its config.
type pair struct {
	config *configInfo
	digest *digestInfo
}

func (m *image) problemList() []problem {
	if m.problems == nil {
		return nil
	}
	return *m.problems
}

// hasRef reports whether m has a record named otherwise than by an ID:
// those carry m.repo.
func (m *image) hasRef() bool { return len(m.named) > 0 || m.ref != nil }

func (m *image) empty() bool { return !m.hasRef() && m.id == nil }

func (m *image) leadsTo(ci *configInfo) bool {
	return slices.ContainsFunc(m.leads, func(p pair) bool { return p.config == ci })
}

// walkedRecord is a record as read, before the index holds it.
type walkedRecord struct {
	name string
	repo string
	// leads are, per config digest (sorted by it), the image digests of this
	// record with that config.
	leads    []lead
	problems []problem
}

// lead is one config digest of a record and the image digests leading to it.
type lead struct {
	config  string
	digests []string
}

// problem is one record or descriptor that was skipped.
type problem struct {
	digest string
	what   string
}

func (p problem) String() string { return p.digest + " " + p.what }

// Option configures an Index.
type Option func(*Index)

// WithLogger sets where skipped records are reported. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(x *Index) {
		if l != nil {
			x.log = l
		}
	}
}

// New returns an index over containerd's image records and content store in
// a containerd namespace (the CRI uses k8s.io). Nothing is read until Build
// or the first lookup.
func New(imgs ImageLister, cs content.Provider, namespace string, opts ...Option) *Index {
	x := &Index{images: imgs, content: cs, namespace: namespace, log: slog.New(slog.DiscardHandler),
		sem: make(chan struct{}, 1), firstBuild: make(chan struct{}), changed: make(chan struct{})}
	x.reset()
	for _, o := range opts {
		o(x)
	}
	return x
}

func (x *Index) reset() {
	x.named = map[string]*image{}
	x.configs = newTable(func(ci *configInfo) key { return ci.key })
	x.digests = newTable(func(di *digestInfo) key { return di.key })
	x.byChain = newTable(func(ci *configInfo) key { return ci.chain })
	x.long = map[key]string{}
	x.problems = map[string]int{}
	x.records, x.peak = 0, 0
}

// str returns the text of k ("" for the zero key).
func (x *Index) str(k key) string {
	switch k[0] {
	case keySHA256:
		return k.sha256String()
	case keyOther:
		return x.long[k]
	}
	return ""
}

// keep returns the key of s, keeping its text when the key does not hold it.
func (x *Index) keep(s string) key {
	k := keyOf(s)
	if k[0] == keyOther {
		if _, ok := x.long[k]; !ok {
			x.long[k] = strings.Clone(s)
		}
	}
	return k
}

// release forgets the text of k once no table holds it.
func (x *Index) release(k key) {
	if k[0] != keyOther {
		return
	}
	_, c := x.configs.get(k)
	_, d := x.digests.get(k)
	_, ch := x.byChain.get(k)
	if !c && !d && !ch {
		delete(x.long, k)
	}
}

func (x *Index) lock(ctx context.Context) error {
	select {
	case x.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (x *Index) unlock() { <-x.sem }

// Build (re)reads every image record with one List and replaces the index.
// Call it at boot, and again when image events may have been missed.
func (x *Index) Build(ctx context.Context) error {
	if err := x.lock(ctx); err != nil {
		return err
	}
	defer x.unlock()
	return x.build(ctx)
}

func (x *Index) build(ctx context.Context) error {
	ctx = namespaces.WithNamespace(ctx, x.namespace)
	recs, err := x.images.List(ctx)
	if err != nil {
		return fmt.Errorf("listing containerd images in namespace %s: %w", x.namespace, err)
	}
	w := newWalker(ctx, x.content)
	w.prefetch(recs)
	walked := make([]*walkedRecord, 0, len(recs))
	for _, img := range recs {
		walked = append(walked, w.record(img))
	}
	chains := x.readChains(ctx, walked, map[string]string{})

	x.mu.Lock()
	old := x.problems
	x.reset()
	for _, r := range walked {
		x.add(r, chains, old)
	}
	x.notifyLocked()
	x.mu.Unlock()
	x.built.Store(true)
	x.firstOnce.Do(func() { close(x.firstBuild) })
	return nil
}

// ensure builds the index if nothing did yet.
func (x *Index) ensure(ctx context.Context) error {
	if x.built.Load() {
		return nil
	}
	if x.following.Load() {
		select {
		case <-x.firstBuild:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("the node's image index is still being built: %w", ctx.Err())
		}
	}
	if err := x.lock(ctx); err != nil {
		return fmt.Errorf("the node's image index is still being built: %w", err)
	}
	defer x.unlock()
	if x.built.Load() {
		return nil
	}
	return x.build(ctx)
}

// Update re-reads one image record, after containerd reported it created,
// updated or deleted (a record that no longer exists leaves the index).
func (x *Index) Update(ctx context.Context, recordName string) error {
	if !x.built.Load() {
		return x.ensure(ctx) // the build reads this record too
	}
	if err := x.lock(ctx); err != nil {
		return err
	}
	defer x.unlock()
	ctx = namespaces.WithNamespace(ctx, x.namespace)
	img, err := x.get(ctx, recordName)
	if isNotFound(err) {
		x.mu.Lock()
		x.remove(recordName)
		x.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading image record %s: %w", recordName, err)
	}
	r := newWalker(ctx, x.content).record(img)
	x.mu.RLock()
	known := map[string]string{}
	for _, l := range r.leads {
		if ci, ok := x.configs.get(keyOf(l.config)); ok {
			known[l.config] = x.str(ci.chain)
		}
	}
	x.mu.RUnlock()
	chains := x.readChains(ctx, []*walkedRecord{r}, known)
	x.mu.Lock()
	x.remove(recordName)
	x.add(r, chains, nil)
	x.notifyLocked()
	x.mu.Unlock()
	return nil
}

// notifyLocked wakes the resolutions waiting for records (x.mu held).
func (x *Index) notifyLocked() {
	close(x.changed)
	x.changed = make(chan struct{})
}

// MissWait bounds how long Resolve waits, for a config digest the index does
// not hold, for the image event that may be on its way: the CRI creates a
// container right after its pull, and the pull's events reach the index
// asynchronously. It is paid only on a miss, and never beyond ctx.
const MissWait = 200 * time.Millisecond

// awaitConfig waits, up to MissWait, until the index holds configDigest.
// It returns at once when the index does not follow image events (then
// nothing would change it).
func (x *Index) awaitConfig(ctx context.Context, configDigest string) {
	if !x.following.Load() {
		return
	}
	x.waiting.Add(1)
	defer x.waiting.Add(-1)
	timer := time.NewTimer(MissWait)
	defer timer.Stop()
	k := keyOf(configDigest)
	for {
		x.mu.RLock()
		_, ok := x.configs.get(k)
		changed := x.changed
		x.mu.RUnlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// Delete drops an image record from the index.
func (x *Index) Delete(recordName string) {
	x.mu.Lock()
	x.remove(recordName)
	x.mu.Unlock()
}

func (x *Index) get(ctx context.Context, recordName string) (images.Image, error) {
	if g, ok := x.images.(imageGetter); ok {
		return g.Get(ctx, recordName)
	}
	recs, err := x.images.List(ctx, "name=="+recordName)
	if err != nil {
		return images.Image{}, err
	}
	for _, r := range recs {
		if r.Name == recordName {
			return r, nil
		}
	}
	return images.Image{}, fmt.Errorf("image %s: %w", recordName, errdefs.ErrNotFound)
}

// readChains reads the rootfs chain ID of every config the records name and
// known does not hold. A config that cannot be read is logged, counted and
// has no chain ID.
func (x *Index) readChains(ctx context.Context, recs []*walkedRecord, known map[string]string) map[string]string {
	var todo []string
	from := map[string]string{} // config -> the first record leading to it, for the log
	for _, r := range recs {
		for _, l := range r.leads {
			if _, ok := known[l.config]; ok {
				continue
			}
			if _, ok := from[l.config]; !ok {
				from[l.config] = r.name
				todo = append(todo, l.config)
			}
		}
	}
	type read struct {
		chain string
		err   error
	}
	got := concurrently(len(todo), func(i int) read {
		ch, err := readChainID(ctx, x.content, todo[i])
		return read{ch, err}
	})
	for i, c := range todo {
		if err := got[i].err; err != nil && !errors.Is(err, errNotPresent) {
			x.skipped.Add(1)
			x.log.Warn("imagestore: skipped image config: its rootfs chain ID is unknown", "config", c, "record", from[c], "error", err)
		}
		known[c] = got[i].chain
	}
	return known
}

// readWorkers bounds the content reads one build or update runs at once.
// containerd answers each read over its API, so a build of 10,000 images
// read one blob at a time waits on round trips for seconds while the
// machine idles.
const readWorkers = 8

// concurrently returns f(0) ... f(n-1), computed by at most readWorkers
// goroutines at a time.
func concurrently[T any](n int, f func(i int) T) []T {
	out := make([]T, n)
	var g errgroup.Group
	g.SetLimit(readWorkers)
	for i := range n {
		g.Go(func() error { out[i] = f(i); return nil })
	}
	_ = g.Wait() // f reports its failures in its results
	return out
}

// nameKind is how a record's name is kept.
type nameKind int

const (
	byName   nameKind = iota // in Index.named, whole
	byRef                    // "<prefix>@<digest>", digest one the record leads to: image.ref
	byConfig                 // "sha256:<config>", an image ID: image.id
)

// find returns the image holding the record named n, and how it holds it.
func (x *Index) find(n string) (*image, nameKind) {
	if m := x.named[n]; m != nil {
		return m, byName
	}
	if idOf(n) != "" {
		if ci, ok := x.configs.get(keyOf(n)); ok {
			for _, m := range ci.images {
				if m.id == ci {
					return m, byConfig
				}
			}
		}
		return nil, byName
	}
	if i := strings.LastIndexByte(n, '@'); i > 0 {
		if di, ok := x.digests.get(keyOf(n[i+1:])); ok {
			for _, m := range di.images {
				if m.ref == di && m.prefix == n[:i] {
					return m, byRef
				}
			}
		}
	}
	return nil, byName
}

// names returns the names of m's records that concern config ci (nil: all).
func (x *Index) names(m *image, ci *configInfo) []string {
	leads := ci == nil || m.leadsTo(ci)
	var out []string
	if leads {
		out = append(out, m.named...)
		if m.ref != nil {
			out = append(out, m.prefix+"@"+x.str(m.ref.key))
		}
	}
	if m.id != nil && (leads || m.id == ci) {
		out = append(out, x.str(m.id.key))
	}
	return out
}

// add puts w in the index; x.mu is held. Problems not in reported (nil:
// the index's own) are new: they are logged and counted once.
//
// Every string the index keeps is copied when it is first kept: what w
// holds was read amid the garbage of a listing and of parsed manifests, and
// the runtime cannot give back a memory span while one string in it lives;
// the copies are allocated together, here.
func (x *Index) add(w *walkedRecord, chains map[string]string, reported map[string]int) {
	if reported == nil {
		reported = x.problems
	}
	n := 0
	for _, l := range w.leads {
		n += len(l.digests)
	}
	leads := make([]pair, 0, n)
	for _, l := range w.leads {
		ci := x.config(l.config, chains)
		for _, d := range l.digests {
			leads = append(leads, pair{ci, x.digest(d)})
		}
	}
	kind, prefix := byName, ""
	var id *configInfo
	var ref *digestInfo
	if idOf(w.name) != "" {
		kind, id = byConfig, x.config(w.name, chains)
	} else if i := strings.LastIndexByte(w.name, '@'); i > 0 {
		k := keyOf(w.name[i+1:])
		for _, p := range leads {
			if p.digest.key == k {
				kind, ref, prefix = byRef, p.digest, w.name[:i]
				break
			}
		}
	}
	m := x.join(leads, w, kind, id)
	if m == nil {
		m = &image{leads: leads}
		if len(w.problems) > 0 {
			ps := slices.Clip(slices.Clone(w.problems))
			m.problems = &ps
		}
		for i, p := range leads {
			if !slices.ContainsFunc(leads[:i], func(o pair) bool { return o.config == p.config }) {
				p.config.images = append(p.config.images, m)
			}
			if !slices.ContainsFunc(leads[:i], func(o pair) bool { return o.digest == p.digest }) {
				p.digest.images = append(p.digest.images, m)
			}
		}
	}
	if kind != byConfig && !m.hasRef() {
		m.repo = x.repo(leads, w.repo)
	}
	name := w.name
	switch kind {
	case byConfig:
		m.id = id
		if !m.leadsTo(id) {
			id.images = append(id.images, m)
		}
		name = x.str(id.key)
	case byRef:
		m.ref, m.prefix = ref, prefix
		if prefix == m.repo {
			m.prefix = m.repo // the one copy
		} else {
			m.prefix = strings.Clone(prefix)
		}
	default:
		name = strings.Clone(name)
		x.named[name] = m
		m.named = append(m.named, name)
	}
	x.records++
	x.peak = max(x.peak, x.records)
	for _, p := range w.problems {
		k := p.String()
		if reported[k] == 0 && x.problems[k] == 0 {
			x.skipped.Add(1)
			x.log.Warn("imagestore: skipped an unusable image record or descriptor; only containers of that image are affected",
				"record", name, "digest", p.digest, "problem", p.what)
		}
		x.problems[k]++
	}
}

// join returns an image that a record with these leads and w's problems,
// named as kind says, can be part of, or nil.
func (x *Index) join(leads []pair, w *walkedRecord, kind nameKind, id *configInfo) *image {
	var cands []*image
	switch {
	case len(leads) > 0:
		cands = leads[0].digest.images
	case id != nil:
		cands = id.images
	}
	for _, m := range cands {
		if !slices.Equal(m.leads, leads) || !slices.Equal(m.problemList(), w.problems) {
			continue
		}
		switch {
		case kind == byConfig && m.id == nil,
			kind == byRef && m.ref == nil && (!m.hasRef() || m.repo == w.repo),
			kind == byName && (!m.hasRef() || m.repo == w.repo):
			return m
		}
	}
	return nil
}

// repo returns the index's copy of repository r, one of the images of
// leads' first digest holds it.
func (x *Index) repo(leads []pair, r string) string {
	if r == "" {
		return ""
	}
	if len(leads) > 0 {
		for _, m := range leads[0].digest.images {
			if m.repo == r {
				return m.repo
			}
		}
	}
	return strings.Clone(r)
}

// config returns what the index holds of config digest c, adding it if
// new, with its chain ID from chains when it has none yet (a record named by
// the config's ID alone reads no chain); x.mu is held.
func (x *Index) config(c string, chains map[string]string) *configInfo {
	k := x.keep(c)
	ci, ok := x.configs.get(k)
	if !ok {
		ci = &configInfo{key: k}
		x.configs.set(k, ci)
	}
	if ch := chains[c]; ci.chain == (key{}) && ch != "" {
		ci.chain = x.keep(ch)
		if first, ok := x.byChain.get(ci.chain); ok {
			ci.sameChain = first
		}
		x.byChain.set(ci.chain, ci)
	}
	return ci
}

// digest returns what the index holds of image digest d, adding it if new;
// x.mu is held.
func (x *Index) digest(d string) *digestInfo {
	k := x.keep(d)
	di, ok := x.digests.get(k)
	if !ok {
		di = &digestInfo{key: k}
		x.digests.set(k, di)
	}
	return di
}

// remove takes the record named n out of the index; x.mu is held.
func (x *Index) remove(n string) {
	m, kind := x.find(n)
	if m == nil {
		return
	}
	switch kind {
	case byName:
		delete(x.named, n)
		m.named = slices.DeleteFunc(m.named, func(o string) bool { return o == n })
	case byRef:
		m.ref, m.prefix = nil, ""
	case byConfig:
		id := m.id
		m.id = nil
		if !m.leadsTo(id) {
			x.unlinkConfig(id, m)
		}
	}
	if !m.hasRef() {
		m.repo = ""
	}
	x.records--
	for _, p := range m.problemList() {
		k := p.String()
		if x.problems[k]--; x.problems[k] <= 0 {
			delete(x.problems, k)
		}
	}
	if m.empty() {
		for i, p := range m.leads {
			if !slices.ContainsFunc(m.leads[:i], func(o pair) bool { return o.config == p.config }) {
				x.unlinkConfig(p.config, m)
			}
			if !slices.ContainsFunc(m.leads[:i], func(o pair) bool { return o.digest == p.digest }) {
				x.unlinkDigest(p.digest, m)
			}
		}
	}
	if x.records < x.peak/4 {
		x.compact()
	}
}

// unlinkDigest removes image m from digest di, and forgets the digest when
// no image leads to it any more.
func (x *Index) unlinkDigest(di *digestInfo, m *image) {
	if di.images = slices.DeleteFunc(di.images, func(o *image) bool { return o == m }); len(di.images) > 0 {
		return
	}
	if o, ok := x.digests.get(di.key); ok && o == di {
		x.digests.del(di.key)
		x.release(di.key)
	}
}

// unlinkConfig removes image m from config ci, and forgets the config when
// no image leads to it any more.
func (x *Index) unlinkConfig(ci *configInfo, m *image) {
	if ci.images = slices.DeleteFunc(ci.images, func(o *image) bool { return o == m }); len(ci.images) > 0 {
		return
	}
	if o, ok := x.configs.get(ci.key); !ok || o != ci {
		return
	}
	x.configs.del(ci.key)
	defer x.release(ci.key)
	if ci.chain == (key{}) {
		return
	}
	// Unlink ci from its chain's configs.
	first, _ := x.byChain.get(ci.chain)
	switch {
	case first == ci && ci.sameChain == nil:
		x.byChain.del(ci.chain)
	case first == ci:
		x.byChain.set(ci.chain, ci.sameChain)
	default:
		for o := first; o != nil; o = o.sameChain {
			if o.sameChain == ci {
				o.sameChain = ci.sameChain
				break
			}
		}
	}
	ci.sameChain = nil
	x.release(ci.chain)
}

// compact rebuilds the index from copies of the records left (add copies
// what it keeps), once most records left; x.mu is held. Go maps keep their
// largest size, and the survivors' objects and strings are scattered over
// memory spans that the deleted records half-emptied: the runtime can return
// a span only when nothing in it lives, so the copies are what lets the
// memory go.
func (x *Index) compact() {
	chains := map[string]string{}
	var walked []*walkedRecord
	seen := map[*image]bool{}
	for ci := range x.configs.all {
		chains[x.str(ci.key)] = x.str(ci.chain)
		for _, m := range ci.images {
			if seen[m] {
				continue
			}
			seen[m] = true
			var leads []lead
			for _, p := range m.leads {
				c, d := x.str(p.config.key), x.str(p.digest.key)
				if n := len(leads); n > 0 && leads[n-1].config == c {
					leads[n-1].digests = append(leads[n-1].digests, d)
				} else {
					leads = append(leads, lead{config: c, digests: []string{d}})
				}
			}
			for _, n := range x.names(m, nil) {
				repo := m.repo
				if idOf(n) != "" {
					repo = ""
				}
				walked = append(walked, &walkedRecord{name: n, repo: repo, leads: leads, problems: slices.Clone(m.problemList())})
			}
		}
	}
	// Images of no config: records whose target is missing or unusable.
	for _, m := range x.named {
		if !seen[m] {
			seen[m] = true
			for _, n := range x.names(m, nil) {
				walked = append(walked, &walkedRecord{name: n, repo: m.repo, problems: slices.Clone(m.problemList())})
			}
		}
	}
	problems := x.problems
	x.reset()
	for _, w := range walked {
		x.add(w, chains, problems)
	}
}

// Compact rebuilds the index from copies of its records, as it does itself
// once most records left: after a burst of deletions, so that what stays is
// allocated together and the memory the others held can go. It holds the
// index for one copy of it.
func (x *Index) Compact() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.compact()
}

// ImageDigests returns the manifest and index digests in the node's stores
// whose config is configDigest, sorted. An empty result is not an error: the
// image may have been removed, or imported without its manifest.
func (x *Index) ImageDigests(ctx context.Context, configDigest string) ([]string, error) {
	digests, _, err := x.Resolve(ctx, configDigest)
	return digests, err
}

// Resolve is ImageDigests plus, for each digest, the repositories whose image
// records lead to it (e.g. "registry.example/app"): where its signatures live.
//
// It reads only the records that lead to configDigest; when there are none
// yet, it waits up to MissWait for an image event to bring them. It fails only when
// the image itself is unusable: no manifest with that config was found, and
// a record of it (the one the CRI names by image ID) could not be read; the
// error names the record and what is wrong.
func (x *Index) Resolve(ctx context.Context, configDigest string) ([]string, map[string][]string, error) {
	if err := x.ensure(ctx); err != nil {
		return nil, nil, err
	}
	x.awaitConfig(ctx, configDigest)
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.resolve(configDigest)
}

// ResolveNow is Resolve without waiting, for a decision made on the caller's
// goroutine (pkg/plugin's fast path): ok is false when Resolve could wait or
// fail (the index not built yet, a writer holding it, the config not in it
// yet, no usable manifest), and the caller then asks Resolve.
func (x *Index) ResolveNow(configDigest string) (digests []string, repos map[string][]string, ok bool) {
	if !x.built.Load() || !x.mu.TryRLock() {
		return nil, nil, false
	}
	defer x.mu.RUnlock()
	if ci, _ := x.configs.get(keyOf(configDigest)); ci == nil {
		return nil, nil, false
	}
	digests, repos, err := x.resolve(configDigest)
	if err != nil || len(digests) == 0 {
		return nil, nil, false
	}
	return digests, repos, true
}

// resolve is Resolve's look-up; x.mu is held for reading.
func (x *Index) resolve(configDigest string) ([]string, map[string][]string, error) {
	var found, bad []string
	repos := map[string][]string{}
	ci, _ := x.configs.get(keyOf(configDigest))
	var imgs []*image
	if ci != nil {
		imgs = ci.images
	}
	for _, m := range imgs {
		for _, p := range m.leads {
			if p.config != ci {
				continue
			}
			d := x.str(p.digest.key)
			found = append(found, d)
			if m.hasRef() && m.repo != "" && !slices.Contains(repos[d], m.repo) {
				repos[d] = append(repos[d], m.repo)
			}
		}
		if ps := m.problemList(); len(ps) > 0 {
			for _, n := range x.names(m, ci) {
				for _, p := range ps {
					bad = append(bad, fmt.Sprintf("image record %s: %s", n, p))
				}
			}
		}
	}
	if len(found) == 0 && len(bad) > 0 {
		sort.Strings(bad)
		return nil, nil, fmt.Errorf("no usable manifest with config %s: %s (the manifest limit is %d bytes); remove the image (crictl rmi) and pull it from a registry that serves valid manifests",
			configDigest, strings.Join(bad, "; "), maxManifestSize)
	}
	if len(found) == 0 {
		return nil, nil, nil
	}
	slices.Sort(found)
	for _, rs := range repos {
		slices.Sort(rs)
	}
	return slices.Compact(found), repos, nil
}

// Candidate is an image digest of the node and the repositories it was
// pulled from (none for images known only by ID).
type Candidate struct {
	Digest       string
	Repositories []string
}

// Candidates returns every image digest of the index once, sorted, with its
// repositories: what boot verification walks.
func (x *Index) Candidates(ctx context.Context) ([]Candidate, error) {
	if err := x.ensure(ctx); err != nil {
		return nil, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]Candidate, 0, x.digests.len())
	for di := range x.digests.all {
		out = append(out, x.candidate(di))
	}
	slices.SortFunc(out, func(a, b Candidate) int { return strings.Compare(a.Digest, b.Digest) })
	return out, nil
}

// RecordCandidates returns the image digests one record leads to, with the
// repositories of each: what to verify when that record lands.
func (x *Index) RecordCandidates(recordName string) []Candidate {
	x.mu.RLock()
	defer x.mu.RUnlock()
	m, _ := x.find(recordName)
	if m == nil {
		return nil
	}
	var ds []*digestInfo
	for _, p := range m.leads {
		if !slices.Contains(ds, p.digest) {
			ds = append(ds, p.digest)
		}
	}
	out := make([]Candidate, 0, len(ds))
	for _, di := range ds {
		out = append(out, x.candidate(di))
	}
	slices.SortFunc(out, func(a, b Candidate) int { return strings.Compare(a.Digest, b.Digest) })
	return out
}

func (x *Index) candidate(di *digestInfo) Candidate {
	c := Candidate{Digest: x.str(di.key)}
	for _, m := range di.images {
		if m.hasRef() && m.repo != "" {
			c.Repositories = append(c.Repositories, m.repo)
		}
	}
	slices.Sort(c.Repositories)
	c.Repositories = slices.Compact(c.Repositories)
	return c
}

// ConfigsOf returns the config digests that a manifest or index digest of the
// node names (for an index: those of its children present on the node),
// sorted; nil when the digest is not an image of the node.
func (x *Index) ConfigsOf(imageDigest string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var cs []string
	if di, ok := x.digests.get(keyOf(imageDigest)); ok {
		for _, m := range di.images {
			for _, p := range m.leads {
				if p.digest == di {
					cs = append(cs, x.str(p.config.key))
				}
			}
		}
	}
	slices.Sort(cs)
	return slices.Compact(cs)
}

// ConfigOf returns the config digest a manifest digest names. For an index
// that names several (children for several platforms present on the node) it
// returns the first, sorted: use ConfigsOf to have them all.
func (x *Index) ConfigOf(imageDigest string) (configDigest string, ok bool) {
	cs := x.ConfigsOf(imageDigest)
	if len(cs) == 0 {
		return "", false
	}
	return cs[0], true
}

// ConfigsForChainID returns the config digests whose rootfs has that chain
// ID (the key of the image's top snapshot), sorted.
func (x *Index) ConfigsForChainID(chainID string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var cs []string
	first, _ := x.byChain.get(keyOf(chainID))
	for ci := first; ci != nil; ci = ci.sameChain {
		cs = append(cs, x.str(ci.key))
	}
	slices.Sort(cs)
	return cs
}

// ChainID returns the rootfs chain ID of a config digest of the node.
func (x *Index) ChainID(configDigest string) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	ci, ok := x.configs.get(keyOf(configDigest))
	if !ok || ci.chain == (key{}) {
		return "", false
	}
	return x.str(ci.chain), true
}

// Len returns the number of image records indexed.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.records
}

// Skipped counts the records, descriptors and configs skipped because they
// could not be used, each once while it stays on the node.
func (x *Index) Skipped() uint64 { return x.skipped.Load() }

// Repository returns the repository of an image record name
// ("registry.example/app:1" -> "registry.example/app"), or "" for names
// that are not references (the CRI also names records by image ID).
func Repository(recordName string) string {
	if strings.HasPrefix(recordName, "sha256:") {
		return ""
	}
	ref, err := name.ParseReference(recordName, name.WeakValidation)
	if err != nil {
		return ""
	}
	return ref.Context().Name()
}

// idOf returns the config digest a record is named by, or "".
func idOf(recordName string) string {
	if strings.HasPrefix(recordName, "sha256:") && len(recordName) == len("sha256:")+64 {
		return recordName
	}
	return ""
}

func isNotFound(err error) bool { return err != nil && errdefs.IsNotFound(err) }

// walker reads records for one build or update: each blob once.
type walker struct {
	ctx  context.Context
	cs   content.Provider
	seen map[string]walked
}

type walked struct {
	b   blob
	err error
}

func newWalker(ctx context.Context, cs content.Provider) *walker {
	return &walker{ctx: ctx, cs: cs, seen: map[string]walked{}}
}

func (w *walker) record(img images.Image) *walkedRecord {
	r := &walkedRecord{name: img.Name, repo: Repository(img.Name)}
	w.walk(r, img.Target, 0, nil)
	slices.SortStableFunc(r.leads, func(a, b lead) int { return strings.Compare(a.config, b.config) })
	// One lead per config, its digests sorted once each.
	out := r.leads[:0]
	for _, l := range r.leads {
		if n := len(out); n > 0 && out[n-1].config == l.config {
			out[n-1].digests = append(out[n-1].digests, l.digests...)
			continue
		}
		out = append(out, l)
	}
	for i := range out {
		slices.Sort(out[i].digests)
		out[i].digests = slices.Clip(slices.Compact(out[i].digests))
	}
	r.leads = slices.Clip(out)
	return r
}

// walk adds to r the manifests at or below desc, each with the indexes above
// it. What cannot be read becomes one of r's problems; an index's child that
// is not on the node (a platform never pulled) is no candidate.
func (w *walker) walk(r *walkedRecord, desc ocispec.Descriptor, depth int, above []string) {
	if depth > maxDepth {
		r.problems = append(r.problems, problem{desc.Digest.String(), fmt.Sprintf("is below more than %d nested indexes", maxDepth)})
		return
	}
	if !images.IsManifestType(desc.MediaType) && !images.IsIndexType(desc.MediaType) {
		return // e.g. an attestation or a config: not an image
	}
	b, err := w.read(desc)
	if errors.Is(err, errNotPresent) {
		if depth == 0 {
			r.problems = append(r.problems, problem{desc.Digest.String(), "is the record's target but is not in the content store"})
		}
		return
	}
	if err != nil {
		r.problems = append(r.problems, problem{desc.Digest.String(), err.Error()})
		return
	}
	if !b.isIndex {
		ds := append(make([]string, 0, 1+len(above)), desc.Digest.String())
		r.leads = append(r.leads, lead{config: b.config, digests: append(ds, above...)})
		return
	}
	below := append(slices.Clip(above), desc.Digest.String())
	for _, child := range b.children {
		w.walk(r, child, depth+1, below)
	}
}

// prefetch reads every manifest and index below imgs' targets, level by
// level and readWorkers at a time, into w.seen, so that walking the records
// afterwards (in order, one at a time) reads nothing more.
func (w *walker) prefetch(imgs []images.Image) {
	level := make([]ocispec.Descriptor, 0, len(imgs))
	for _, img := range imgs {
		level = append(level, img.Target)
	}
	for depth := 0; depth <= maxDepth && len(level) > 0; depth++ {
		var todo []ocispec.Descriptor
		queued := map[string]bool{}
		for _, d := range level {
			k := d.Digest.String()
			if _, ok := w.seen[k]; ok || queued[k] || d.Size > maxManifestSize ||
				(!images.IsManifestType(d.MediaType) && !images.IsIndexType(d.MediaType)) {
				continue // walk handles these as before
			}
			queued[k] = true
			todo = append(todo, d)
		}
		got := concurrently(len(todo), func(i int) walked {
			b, err := readManifest(w.ctx, w.cs, todo[i])
			return walked{b, err}
		})
		level = level[:0]
		for i, d := range todo {
			w.seen[d.Digest.String()] = got[i]
			if got[i].err == nil && got[i].b.isIndex {
				level = append(level, got[i].b.children...)
			}
		}
	}
}

func (w *walker) read(desc ocispec.Descriptor) (blob, error) {
	if desc.Size > maxManifestSize {
		// Per descriptor: another descriptor of the same digest may be honest.
		return blob{}, fmt.Errorf("descriptor declares %d bytes, above the %d byte manifest limit", desc.Size, maxManifestSize)
	}
	k := desc.Digest.String()
	if s, ok := w.seen[k]; ok {
		return s.b, s.err
	}
	b, err := readManifest(w.ctx, w.cs, desc)
	w.seen[k] = walked{b, err}
	return b, err
}
