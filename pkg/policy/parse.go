package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nri-csig/nri-csig/internal/registry/check"
)

// MaxBundleSize bounds the bytes ParseBundle accepts: a bundle comes from a
// registry or a mounted volume, and a node must not be made to chew on
// gigabytes.
const MaxBundleSize = 8 << 20

// ErrTooLarge: a source delivered more bytes than a bundle or signature may
// have. Such a bundle is refused, not merely unavailable.
var ErrTooLarge = errors.New("too large")

// maxErrors bounds how many problems one parse reports.
const maxErrors = 20

// ParseError is one problem in a bundle, located in its source.
type ParseError struct {
	File   string
	Line   int // 1-based; 0 when unknown
	Column int
	// Field is the path of the offending field, e.g. "SecurityPolicy prod: spec.threshold".
	Field string
	Msg   string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ParseBundle parses and validates a policy bundle: a multi-document YAML
// stream with exactly one PolicyBundle document (carrying the serial) and any
// number of Witness, SecurityPolicy, Exemption and Revocation documents.
// name is used in errors (a file name or a registry reference).
//
// Parsing is strict: unknown fields, duplicate keys or names, dangling
// witness references, empty key lists, malformed digests, keys or times, a
// threshold above the number of witnesses and unknown modes are errors. The
// error joins one *ParseError per problem, each naming the file, the line
// and the field.
func ParseBundle(name string, data []byte) (*Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, &ParseError{File: name, Msg: fmt.Sprintf("bundle is %d bytes, more than the %d allowed; split it or drop unused documents", len(data), MaxBundleSize)}
	}
	p := &parser{file: name}
	b := &Bundle{}
	var haveBundleDoc bool
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The YAML itself is broken; nothing after this point can be trusted.
			p.errs = append(p.errs, &ParseError{File: name, Msg: fmt.Sprintf("invalid YAML: %v", err)})
			break
		}
		if len(doc.Content) == 0 {
			continue // an empty document, e.g. a trailing "---"
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		if p.full() {
			break
		}
		p.document(b, root, &haveBundleDoc)
	}
	if !haveBundleDoc && len(p.errs) == 0 {
		p.errs = append(p.errs, &ParseError{File: name, Line: 1, Column: 1, Msg: "no " + KindBundle + " document; add one with metadata.name and spec.serial"})
	}
	if len(p.errs) == 0 {
		p.link(b)
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	b.index = buildIndex(b.Policies)
	return b, nil
}

type parser struct {
	file string
	errs []error
	// positions of names already seen, per kind, for duplicate and dangling
	// reference errors.
	seen map[string]map[string]*yaml.Node
	// refs to witnesses from policies, checked once every witness is known.
	refs []witnessRef
	// fingerprint -> witness name, to refuse one key in two witnesses.
	fps map[string]string
	// x509 witnesses seen, to refuse two that would accept one signature.
	x509s []x509Seen
	// distinct signature repositories of the witnesses, to cap them.
	sigRepos map[string]bool
}

type witnessRef struct {
	policy, witness string
	node            *yaml.Node
}

func (p *parser) full() bool { return len(p.errs) >= maxErrors }

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	if p.full() {
		return
	}
	e := &ParseError{File: p.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// fields returns the values of a mapping node by key, refusing keys not in
// known, duplicate keys, aliases and merge keys.
func (p *parser) fields(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "expected a mapping, found %s", kindName(n))
		return nil
	}
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, path, "mapping keys must be plain strings")
			continue
		}
		fp := join(path, k.Value)
		if !slices.Contains(known, k.Value) {
			p.errorf(k, fp, "unknown field; known fields here are %s", strings.Join(known, ", "))
			continue
		}
		if _, dup := m[k.Value]; dup {
			p.errorf(k, fp, "field given twice; keep one")
			continue
		}
		if v.Kind == yaml.AliasNode {
			p.errorf(v, fp, "YAML aliases are not allowed in a bundle; write the value out")
			continue
		}
		m[k.Value] = v
	}
	return m
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an unexpected node"
}

// str reads a string scalar. A missing field yields "" (and an error when
// required).
func (p *parser) str(m map[string]*yaml.Node, key, path string, required bool, parent *yaml.Node) string {
	n, ok := m[key]
	fp := join(path, key)
	if !ok {
		if required {
			p.errorf(parent, fp, "required field is missing")
		}
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		p.errorf(n, fp, "expected a string, found %s; quote the value", kindName(n))
		return ""
	}
	if required && strings.TrimSpace(n.Value) == "" {
		p.errorf(n, fp, "must not be empty")
	}
	return n.Value
}

func (p *parser) strList(m map[string]*yaml.Node, key, path string, required bool, parent *yaml.Node) ([]string, []*yaml.Node) {
	n, ok := m[key]
	fp := join(path, key)
	if !ok {
		if required {
			p.errorf(parent, fp, "required field is missing")
		}
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, fp, "expected a list, found %s", kindName(n))
		return nil, nil
	}
	if required && len(n.Content) == 0 {
		p.errorf(n, fp, "list must not be empty")
	}
	out := make([]string, 0, len(n.Content))
	nodes := make([]*yaml.Node, 0, len(n.Content))
	// A set, not a search of out: lists run to 100k namespaces, and parsing
	// must stay linear in their length.
	seen := make(map[string]struct{}, len(n.Content))
	for i, e := range n.Content {
		if e.Kind != yaml.ScalarNode || e.Tag != "!!str" {
			p.errorf(e, fmt.Sprintf("%s[%d]", fp, i), "expected a string, found %s; quote the value", kindName(e))
			continue
		}
		if _, dup := seen[e.Value]; dup {
			p.errorf(e, fmt.Sprintf("%s[%d]", fp, i), "%q is listed twice; keep one", e.Value)
			continue
		}
		seen[e.Value] = struct{}{}
		out = append(out, e.Value)
		nodes = append(nodes, e)
	}
	return out, nodes
}

func (p *parser) boolean(m map[string]*yaml.Node, key, path string) bool {
	n, ok := m[key]
	if !ok {
		return false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, join(path, key), "expected true or false, found %s", kindName(n))
		return false
	}
	v, _ := strconv.ParseBool(n.Value)
	return v
}

// uint reads a whole number; n is nil when the field is absent and ok is
// false when it is present but not a valid number (already reported).
func (p *parser) uint(m map[string]*yaml.Node, key, path string, required bool, parent *yaml.Node) (v uint64, n *yaml.Node, ok bool) {
	n, present := m[key]
	fp := join(path, key)
	if !present {
		if required {
			p.errorf(parent, fp, "required field is missing")
		}
		return 0, nil, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errorf(n, fp, "expected a whole number, found %s", kindName(n))
		return 0, n, false
	}
	v, err := strconv.ParseUint(n.Value, 10, 63)
	if err != nil {
		p.errorf(n, fp, "expected a whole number between 0 and 2^63-1, found %q", n.Value)
		return 0, n, false
	}
	return v, n, true
}

// validity reads the bundle header's optional notBefore and expires.
func (p *parser) validity(b *Bundle, m map[string]*yaml.Node, path string, spec *yaml.Node) {
	if _, ok := m["notBefore"]; ok {
		b.NotBefore = p.time(m, "notBefore", path, spec)
	}
	if _, ok := m["expires"]; ok {
		b.Expires = p.time(m, "expires", path, spec)
	}
	if !b.NotBefore.IsZero() && !b.Expires.IsZero() && !b.NotBefore.Before(b.Expires) {
		p.errorf(m["expires"], join(path, "expires"), "%s is not after notBefore %s; the bundle would never be valid",
			b.Expires.Format(time.RFC3339), b.NotBefore.Format(time.RFC3339))
	}
}

func (p *parser) time(m map[string]*yaml.Node, key, path string, parent *yaml.Node) time.Time {
	n, ok := m[key]
	fp := join(path, key)
	if !ok {
		p.errorf(parent, fp, "required field is missing; give an RFC 3339 time such as 2026-12-31T23:59:59Z")
		return time.Time{}
	}
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!timestamp") {
		p.errorf(n, fp, "expected an RFC 3339 time, found %s", kindName(n))
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, n.Value)
	if err != nil {
		p.errorf(n, fp, "%q is not an RFC 3339 time with a zone (e.g. 2026-12-31T23:59:59Z)", n.Value)
		return time.Time{}
	}
	return t.UTC()
}

// The name patterns are compiled when first used: their bounded repetitions
// make programs of about half a MiB, which every process importing the
// package would otherwise build at start (nri-csig verify reads no policy).
var (
	// Names of witnesses, policies, exemptions and revocations.
	nameRE = lazyRegexp(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$`)
	// Kubernetes namespace names (RFC 1123 labels).
	namespaceRE = lazyRegexp(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// Cluster names: an identifier the operator chose; kept printable.
	clusterRE = lazyRegexp(`^[A-Za-z0-9]([A-Za-z0-9._:-]{0,251}[A-Za-z0-9])?$`)
	// Pod names (RFC 1123 subdomains).
	podRE = lazyRegexp(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
)

func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// ValidDigest reports whether d is a sha256 or sha512 digest in the
// "algorithm:lowercase-hex" form (the shared check of internal/registry/check).
func ValidDigest(d string) bool { return check.Digest(d) == nil }

// ValidKeyID reports whether id names a witness key: a public key's
// fingerprint (sha256:<hex>) or a certificate witness's trust ID
// (x509:sha256:<hex>, sigstore:sha256:<hex>).
func ValidKeyID(id string) bool {
	for _, kind := range []WitnessKind{WitnessX509, WitnessSigstore} {
		if rest, ok := strings.CutPrefix(id, string(kind)+":"); ok {
			id = rest
			break
		}
	}
	return strings.HasPrefix(id, "sha256:") && ValidDigest(id)
}

// trustID is the ID of a certificate witness's trust material: the kind and
// the SHA-256 of a canonical encoding of what it trusts.
func trustID(kind WitnessKind, canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return string(kind) + ":sha256:" + hex.EncodeToString(sum[:])
}

func (p *parser) checkName(n *yaml.Node, field, name string) {
	if name != "" && !nameRE().MatchString(name) {
		p.errorf(n, field, "%q is not a valid name: use letters, digits, '.', '_' and '-', starting and ending with a letter or digit", name)
	}
}

// declare records a name of a kind and refuses duplicates.
func (p *parser) declare(kind, name string, n *yaml.Node) bool {
	if p.seen == nil {
		p.seen = map[string]map[string]*yaml.Node{}
	}
	if p.seen[kind] == nil {
		p.seen[kind] = map[string]*yaml.Node{}
	}
	if prev, dup := p.seen[kind][name]; dup {
		p.errorf(n, kind+" "+name, "%s %q is already defined at line %d; names must be unique", kind, name, prev.Line)
		return false
	}
	p.seen[kind][name] = n
	return true
}

func (p *parser) document(b *Bundle, root *yaml.Node, haveBundleDoc *bool) {
	top := p.fields(root, "", "apiVersion", "kind", "metadata", "spec")
	if top == nil {
		return
	}
	api := p.str(top, "apiVersion", "", true, root)
	kind := p.str(top, "kind", "", true, root)
	if api != "" && api != APIVersion {
		p.errorf(top["apiVersion"], "apiVersion", "%q is not supported; use %s", api, APIVersion)
		return
	}
	var name string
	var nameNode *yaml.Node = root
	if mn, ok := top["metadata"]; ok {
		meta := p.fields(mn, "metadata", "name")
		if meta != nil {
			name = p.str(meta, "name", "metadata", true, mn)
			if n := meta["name"]; n != nil {
				nameNode = n
			}
		}
	} else if kind != "" {
		p.errorf(root, "metadata.name", "required field is missing")
	}
	p.checkName(nameNode, "metadata.name", name)
	spec, ok := top["spec"]
	if !ok {
		if kind != "" {
			p.errorf(root, kind+" "+name+": spec", "required field is missing")
		}
		return
	}
	path := kind + " " + name + ": spec"
	switch kind {
	case "":
		return
	case KindBundle:
		if *haveBundleDoc {
			p.errorf(root, "kind", "a second %s document; a bundle has exactly one", KindBundle)
			return
		}
		*haveBundleDoc = true
		b.Name = name
		m := p.fields(spec, path, "serial", "description", "notBefore", "expires")
		if m == nil {
			return
		}
		serial, sn, ok := p.uint(m, "serial", path, true, spec)
		b.Serial = serial
		if ok && serial == 0 {
			p.errorf(sn, join(path, "serial"), "must be at least 1")
		}
		b.Description = p.str(m, "description", path, false, spec)
		p.validity(b, m, path, spec)
	case KindWitness:
		if w := p.witness(name, nameNode, spec, path); w != nil && p.declare(kind, name, nameNode) {
			b.Witnesses = append(b.Witnesses, w)
		}
	case KindSecurityPolicy:
		if sp := p.policy(name, spec, path); sp != nil && p.declare(kind, name, nameNode) {
			b.Policies = append(b.Policies, sp)
		}
	case KindExemption:
		if e := p.exemption(name, spec, path); e != nil && p.declare(kind, name, nameNode) {
			b.Exemptions = append(b.Exemptions, e)
		}
	case KindRevocation:
		if r := p.revocation(name, spec, path); r != nil && p.declare(kind, name, nameNode) {
			b.Revocations = append(b.Revocations, r)
		}
	default:
		p.errorf(top["kind"], "kind", "unknown kind %q; use %s, %s, %s, %s or %s", kind,
			KindBundle, KindWitness, KindSecurityPolicy, KindExemption, KindRevocation)
	}
}

func (p *parser) witness(name string, nameNode, spec *yaml.Node, path string) *Witness {
	m := p.fields(spec, path, "description", "kind", "keys", "x509", "sigstore", "signatureRepository")
	if m == nil {
		return nil
	}
	w := &Witness{Name: name, Description: p.str(m, "description", path, false, spec),
		Kind: WitnessKind(p.str(m, "kind", path, false, spec))}
	if w.Kind == "" {
		w.Kind = WitnessKeys
	}
	w.SignatureRepository = p.signatureRepository(m, path, spec)
	// Each kind has its own section; the others must be absent.
	sections := map[WitnessKind]string{WitnessKeys: "keys", WitnessX509: "x509", WitnessSigstore: "sigstore"}
	own, ok := sections[w.Kind]
	if !ok {
		p.errorf(m["kind"], join(path, "kind"), "unknown witness kind %q; use keys (public keys, the default), x509 (Notary Project certificates) or sigstore (keyless)", w.Kind)
		return nil
	}
	for kind, field := range sections {
		if n, set := m[field]; set && kind != w.Kind {
			p.errorf(n, join(path, field), "a witness of kind %s has no %s section; remove it, or set kind: %s", w.Kind, field, kind)
		}
	}
	if _, set := m[own]; !set {
		if w.Kind == WitnessKeys {
			p.errorf(spec, join(path, "keys"), "required field is missing; a witness needs at least one public key")
		} else {
			p.errorf(spec, join(path, own), "required field is missing; a witness of kind %s needs its %s section", w.Kind, own)
		}
		return nil
	}
	var k *Key
	switch w.Kind {
	case WitnessKeys:
		p.witnessKeys(w, m["keys"], path)
		return w
	case WitnessX509:
		if w.X509 = p.x509Trust(m["x509"], join(path, "x509")); w.X509 != nil && p.x509Distinct(name, w.X509, m["x509"], join(path, "x509")) {
			k = &Key{Witness: name, Kind: w.Kind, X509: w.X509, Fingerprint: w.X509.ID()}
		}
	case WitnessSigstore:
		if w.Sigstore = p.sigstoreTrust(m["sigstore"], join(path, "sigstore")); w.Sigstore != nil {
			k = &Key{Witness: name, Kind: w.Kind, Sigstore: w.Sigstore, Fingerprint: w.Sigstore.ID()}
		}
	}
	if k != nil && p.uniqueKey(name, k, m[own], join(path, own)) {
		w.Keys = []*Key{k}
	}
	return w
}

// witnessKeys reads the public keys of a witness of kind keys.
func (p *parser) witnessKeys(w *Witness, kn *yaml.Node, path string) {
	if kn.Kind != yaml.SequenceNode {
		p.errorf(kn, join(path, "keys"), "expected a list, found %s", kindName(kn))
		return
	}
	if len(kn.Content) == 0 {
		p.errorf(kn, join(path, "keys"), "list must not be empty; a witness needs at least one public key")
		return
	}
	for i, e := range kn.Content {
		kp := fmt.Sprintf("%s.keys[%d]", path, i)
		if k := p.key(w.Name, e, kp); k != nil && p.uniqueKey(w.Name, k, e, kp) {
			w.Keys = append(w.Keys, k)
		}
	}
}

// uniqueKey records k as witness's, and refuses a key (or trust material)
// that is already listed: one key in two witnesses would let one signature
// count twice toward a threshold.
func (p *parser) uniqueKey(witness string, k *Key, n *yaml.Node, path string) bool {
	if p.fps == nil {
		p.fps = map[string]string{}
	}
	other, dup := p.fps[k.Fingerprint]
	switch {
	case dup && other == witness:
		p.errorf(n, path, "key %s is listed twice in this witness; keep one", k.Fingerprint)
		return false
	case dup:
		p.errorf(n, path, "key %s is already a key of witness %q; a key may belong to one witness only", k.Fingerprint, other)
		return false
	}
	p.fps[k.Fingerprint] = witness
	return true
}

// signatureRepository reads a witness's optional signatureRepository: a
// repository with its registry host and no tag or digest.
func (p *parser) signatureRepository(m map[string]*yaml.Node, path string, spec *yaml.Node) string {
	n, ok := m["signatureRepository"]
	if !ok {
		return ""
	}
	r := p.str(m, "signatureRepository", path, false, spec)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return "" // str reported it
	}
	if err := check.Repository(r); err != nil {
		p.errorf(n, join(path, "signatureRepository"), "%v", err)
		return ""
	}
	if p.sigRepos == nil {
		p.sigRepos = map[string]bool{}
	}
	if !p.sigRepos[r] && len(p.sigRepos) >= MaxSignatureRepositories {
		// Nodes search every one for every image: keep that bounded.
		p.errorf(n, join(path, "signatureRepository"), "the bundle already names %d signature repositories, the most nodes search; let witnesses share one", MaxSignatureRepositories)
		return ""
	}
	p.sigRepos[r] = true
	return r
}

func (p *parser) key(witness string, n *yaml.Node, path string) *Key {
	m := p.fields(n, path, "publicKey", "fingerprint", "algorithm", "keySpec", "provider", "ref", "region", "keyId", "keyVersionId")
	if m == nil {
		return nil
	}
	k := &Key{
		Witness:      witness,
		Kind:         WitnessKeys,
		PublicKeyPEM: p.str(m, "publicKey", path, true, n),
		Provider:     p.str(m, "provider", path, false, n),
		Ref:          p.str(m, "ref", path, false, n),
		Region:       p.str(m, "region", path, false, n),
		KeyID:        p.str(m, "keyId", path, false, n),
		KeyVersionID: p.str(m, "keyVersionId", path, false, n),
	}
	fp := p.str(m, "fingerprint", path, false, n)
	alg := Algorithm(p.str(m, "algorithm", path, false, n))
	spec := p.str(m, "keySpec", path, false, n)
	if k.PublicKeyPEM == "" {
		return nil
	}
	pub, gotSpec, err := ParsePublicKeyPEM([]byte(k.PublicKeyPEM))
	if err != nil {
		p.errorf(m["publicKey"], join(path, "publicKey"), "%v", err)
		return nil
	}
	k.PublicKey, k.KeySpec = pub, gotSpec
	k.Fingerprint, err = Fingerprint(pub)
	if err != nil {
		p.errorf(m["publicKey"], join(path, "publicKey"), "%v", err)
		return nil
	}
	if fp != "" && fp != k.Fingerprint {
		p.errorf(m["fingerprint"], join(path, "fingerprint"), "%s does not match the public key, whose fingerprint is %s; fix or drop the field", fp, k.Fingerprint)
		return nil
	}
	if spec != "" && spec != gotSpec {
		p.errorf(m["keySpec"], join(path, "keySpec"), "%s does not match the public key, which is %s; fix or drop the field", spec, gotSpec)
		return nil
	}
	if alg == "" {
		alg = defaultAlgorithm(pub)
	} else if err := checkAlgorithm(pub, alg); err != nil {
		p.errorf(m["algorithm"], join(path, "algorithm"), "%v", err)
		return nil
	}
	k.Algorithm = alg
	return k
}

func (p *parser) policy(name string, spec *yaml.Node, path string) *SecurityPolicy {
	m := p.fields(spec, path, "witnesses", "threshold", "clusters", "namespaces", "enabled", "mode", "note")
	if m == nil {
		return nil
	}
	sp := &SecurityPolicy{Name: name}
	var wnodes, cnodes, nnodes []*yaml.Node
	sp.Witnesses, wnodes = p.strList(m, "witnesses", path, true, spec)
	sp.Clusters, cnodes = p.strList(m, "clusters", path, true, spec)
	sp.Namespaces, nnodes = p.strList(m, "namespaces", path, true, spec)
	for i, w := range sp.Witnesses {
		p.refs = append(p.refs, witnessRef{policy: name, witness: w, node: wnodes[i]})
	}
	for i, c := range sp.Clusters {
		if c != Wildcard && !clusterRE().MatchString(c) {
			p.errorf(cnodes[i], join(path, "clusters"), "%q is not a valid cluster name (letters, digits, '.', '_', ':', '-') nor %q", c, Wildcard)
		}
	}
	for i, ns := range sp.Namespaces {
		if ns != Wildcard && !namespaceRE().MatchString(ns) {
			p.errorf(nnodes[i], join(path, "namespaces"), "%q is not a Kubernetes namespace name (lowercase RFC 1123 label) nor %q", ns, Wildcard)
		}
	}
	t, tn, tok := p.uint(m, "threshold", path, false, spec)
	switch {
	case tn == nil:
		sp.Threshold = len(sp.Witnesses)
	case !tok:
	case t == 0:
		p.errorf(tn, join(path, "threshold"), "must be at least 1; leave it out to require every witness")
	case t > uint64(len(sp.Witnesses)):
		p.errorf(tn, join(path, "threshold"), "%d is more than the %d witnesses listed; lower it or add witnesses", t, len(sp.Witnesses))
	default:
		sp.Threshold = int(t)
	}
	sp.Enabled = p.boolean(m, "enabled", path)
	mode := p.str(m, "mode", path, false, spec)
	switch Mode(mode) {
	case "", Enforce:
		sp.Mode = Enforce
	case Audit:
		sp.Mode = Audit
	default:
		p.errorf(m["mode"], join(path, "mode"), "unknown mode %q; use %s or %s", mode, Enforce, Audit)
	}
	sp.Note = p.str(m, "note", path, false, spec)
	return sp
}

func (p *parser) exemption(name string, spec *yaml.Node, path string) *Exemption {
	m := p.fields(spec, path, "namespace", "imageDigest", "pod", "expires", "reason")
	if m == nil {
		return nil
	}
	e := &Exemption{
		Name:        name,
		Namespace:   p.str(m, "namespace", path, true, spec),
		ImageDigest: p.str(m, "imageDigest", path, false, spec),
		Pod:         p.str(m, "pod", path, false, spec),
		Reason:      p.str(m, "reason", path, true, spec),
	}
	e.Expires = p.time(m, "expires", path, spec)
	if e.Namespace != "" && !namespaceRE().MatchString(e.Namespace) {
		p.errorf(m["namespace"], join(path, "namespace"), "%q is not a Kubernetes namespace name; an exemption names one namespace", e.Namespace)
	}
	switch {
	case e.ImageDigest == "" && e.Pod == "":
		p.errorf(spec, path, "give imageDigest or pod: an exemption covers one image or one pod")
	case e.ImageDigest != "" && e.Pod != "":
		p.errorf(m["pod"], path, "give imageDigest or pod, not both; write two exemptions")
	case e.ImageDigest != "" && !ValidDigest(e.ImageDigest):
		p.errorf(m["imageDigest"], join(path, "imageDigest"), "%q is not a digest; use sha256:<64 lowercase hex>", e.ImageDigest)
	case e.Pod != "" && !podRE().MatchString(e.Pod):
		p.errorf(m["pod"], join(path, "pod"), "%q is not a Kubernetes pod name", e.Pod)
	}
	return e
}

func (p *parser) revocation(name string, spec *yaml.Node, path string) *Revocation {
	m := p.fields(spec, path, "keys", "imageDigests", "configDigests", "effective", "reason")
	if m == nil {
		return nil
	}
	r := &Revocation{Name: name}
	var kn, dn []*yaml.Node
	r.Keys, kn = p.strList(m, "keys", path, false, spec)
	r.ImageDigests, dn = p.strList(m, "imageDigests", path, false, spec)
	var cn []*yaml.Node
	r.ConfigDigests, cn = p.strList(m, "configDigests", path, false, spec)
	r.Effective = p.time(m, "effective", path, spec)
	r.Reason = p.str(m, "reason", path, false, spec)
	if len(r.Keys) == 0 && len(r.ImageDigests) == 0 {
		p.errorf(spec, path, "give keys (fingerprints) or imageDigests to revoke")
	}
	for i, k := range r.Keys {
		if !ValidKeyID(k) {
			p.errorf(kn[i], join(path, "keys"), "%q is not a key fingerprint; use sha256:<64 lowercase hex> (or x509:sha256:… / sigstore:sha256:… for a certificate witness) as 'nri-csig witness show' prints it", k)
		}
	}
	for i, d := range r.ImageDigests {
		if !ValidDigest(d) {
			p.errorf(dn[i], join(path, "imageDigests"), "%q is not a digest; use sha256:<64 lowercase hex>", d)
		}
	}
	if len(r.ConfigDigests) > 0 && len(r.ImageDigests) == 0 {
		p.errorf(m["configDigests"], join(path, "configDigests"), "configDigests name the configs of the revoked imageDigests; give the imageDigests too")
	}
	for i, d := range r.ConfigDigests {
		if !ValidDigest(d) {
			p.errorf(cn[i], join(path, "configDigests"), "%q is not a digest; use sha256:<64 lowercase hex>", d)
		}
	}
	return r
}

// link resolves cross-document references once every document is read.
func (p *parser) link(b *Bundle) {
	b.witnessByName = make(map[string]*Witness, len(b.Witnesses))
	b.keyByFP = map[string]*Key{}
	for _, w := range b.Witnesses {
		b.witnessByName[w.Name] = w
		for _, k := range w.Keys {
			b.keyByFP[k.Fingerprint] = k
		}
	}
	b.policyByName = make(map[string]*SecurityPolicy, len(b.Policies))
	for _, sp := range b.Policies {
		b.policyByName[sp.Name] = sp
	}
	for _, r := range p.refs {
		if b.witnessByName[r.witness] == nil {
			p.errorf(r.node, "SecurityPolicy "+r.policy+": spec.witnesses", "witness %q is not defined in this bundle; add a Witness document or fix the name", r.witness)
		}
	}
}
