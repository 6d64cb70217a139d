// Package testsigstore is an offline Sigstore for tests: a Fulcio-like CA
// that issues short-lived certificates with an embedded SCT, a Rekor log
// (sigstore-go's VirtualSigstore) that returns entries with an inclusion
// promise, an inclusion proof and a signed checkpoint, and a timestamp
// authority. It signs in-toto statements into Sigstore bundles (v0.3, the
// format cosign v3 writes) and exports its trusted_root.json.
//
// Test code only: the node daemon and the CLI never import it.
package testsigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	ctx509util "github.com/google/certificate-transparency-go/x509util"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
)

// CosignSignPredicateType is the predicate type of a cosign v3 image signature.
const CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"

// BundleMediaType is the media type of the bundles Sign returns.
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Sigstore is one offline Sigstore deployment.
type Sigstore struct {
	vs        *ca.VirtualSigstore
	fulcio    *x509.Certificate // root
	inter     *x509.Certificate
	interKey  *ecdsa.PrivateKey
	ctKey     *ecdsa.PrivateKey
	createdAt time.Time
}

// New returns a Sigstore whose CAs and logs are valid from a day ago to a
// day from now.
func New() (*Sigstore, error) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		return nil, err
	}
	s := &Sigstore{vs: vs, createdAt: time.Now()}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testsigstore", Organization: []string{"testsigstore.dev"}},
		NotBefore: s.createdAt.Add(-24 * time.Hour), NotAfter: s.createdAt.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	if s.fulcio, err = create(rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey); err != nil {
		return nil, err
	}
	if s.interKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "testsigstore-intermediate", Organization: []string{"testsigstore.dev"}},
		NotBefore: rootTmpl.NotBefore, NotAfter: rootTmpl.NotAfter,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true, IsCA: true,
	}
	if s.inter, err = create(interTmpl, s.fulcio, &s.interKey.PublicKey, rootKey); err != nil {
		return nil, err
	}
	if s.ctKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	return s, nil
}

func create(tmpl, parent *x509.Certificate, pub any, priv crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// TrustedRoot returns the deployment's trusted_root.json: the Fulcio CA,
// the CT log, the Rekor log and the TSA.
func (s *Sigstore) TrustedRoot() ([]byte, error) {
	start, end := s.createdAt.Add(-24*time.Hour), s.createdAt.Add(24*time.Hour)
	logs := func(pub crypto.PublicKey, baseURL string) (map[string]*root.TransparencyLog, error) {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		id := sha256.Sum256(der)
		return map[string]*root.TransparencyLog{hex.EncodeToString(id[:]): {
			BaseURL: baseURL, ID: id[:], ValidityPeriodStart: start, ValidityPeriodEnd: end,
			HashFunc: crypto.SHA256, PublicKey: pub, SignatureHashFunc: crypto.SHA256,
		}}, nil
	}
	var rekorPub crypto.PublicKey
	for _, l := range s.vs.RekorLogs() {
		rekorPub = l.PublicKey
	}
	rekor, err := logs(rekorPub, "https://rekor.localhost")
	if err != nil {
		return nil, err
	}
	ctlogs, err := logs(&s.ctKey.PublicKey, "https://ctfe.localhost")
	if err != nil {
		return nil, err
	}
	fulcio := &root.FulcioCertificateAuthority{Root: s.fulcio, Intermediates: []*x509.Certificate{s.inter},
		ValidityPeriodStart: start, ValidityPeriodEnd: end, URI: "https://fulcio.localhost"}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, []root.CertificateAuthority{fulcio}, ctlogs,
		s.vs.TimestampingAuthorities(), rekor)
	if err != nil {
		return nil, err
	}
	return tr.MarshalJSON()
}

// Options change how Sign signs; the zero value is what public-good
// Sigstore and cosign v3 produce.
type Options struct {
	// NotBefore is the certificate's start (default now); it lives ten minutes.
	NotBefore time.Time
	// IntegratedTime is the log's time for the entry (default NotBefore plus a minute).
	IntegratedTime time.Time
	// NoSCT leaves the SCT out of the certificate.
	NoSCT bool
	// NoTlog leaves the transparency-log entry out.
	NoTlog bool
	// NoInclusionProof leaves the inclusion proof (and checkpoint) out, keeping the promise.
	NoInclusionProof bool
	// NoTimestamp leaves the RFC 3161 timestamp out (it is taken now).
	NoTimestamp bool
}

// Statement returns an in-toto statement of predicateType over the
// sha256 digest ("sha256:<hex>") of an image named name.
func Statement(name, digest, predicateType string) []byte {
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": name, "digest": map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")}}},
		"predicateType": predicateType,
		"predicate":     map[string]any{},
	}
	b, _ := json.Marshal(st)
	return b
}

// Sign signs statement with a certificate for subject (an email, or a
// URI when it has "://") from OIDC issuer, and returns the bundle JSON.
func (s *Sigstore) Sign(subject, issuer string, statement []byte, o Options) ([]byte, error) {
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Minute)
	}
	if o.IntegratedTime.IsZero() {
		o.IntegratedTime = o.NotBefore.Add(time.Minute)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf, err := s.leaf(subject, issuer, &key.PublicKey, o)
	if err != nil {
		return nil, err
	}
	const payloadType = "application/vnd.in-toto+json"
	h := sha256.Sum256(dsse.PAE(payloadType, statement))
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return nil, err
	}
	vm := &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: leaf.Raw}},
	}
	if !o.NoTlog {
		env := &dsse.Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(statement),
			Signatures: []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}}}
		e, err := s.vs.GenerateTlogEntry(leaf, env, sig, o.IntegratedTime.Unix(), !o.NoInclusionProof)
		if err != nil {
			return nil, err
		}
		tle := e.TransparencyLogEntry()
		tle.KindVersion = &protorekor.KindVersion{Kind: "dsse", Version: "0.0.1"}
		set, err := s.promise(e.TransparencyLogEntry())
		if err != nil {
			return nil, err
		}
		tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
		vm.TlogEntries = []*protorekor.TransparencyLogEntry{tle}
	}
	if !o.NoTimestamp {
		tsr, err := s.vs.TimestampResponse(sig)
		if err != nil {
			return nil, err
		}
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: tsr}},
		}
	}
	b := &protobundle.Bundle{
		MediaType:            BundleMediaType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: statement, PayloadType: payloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	}
	return protojson.Marshal(b)
}

// promise is the log's signed entry timestamp over e, as Rekor v1 makes it.
func (s *Sigstore) promise(e *protorekor.TransparencyLogEntry) ([]byte, error) {
	return s.vs.RekorSignPayload(tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(e.GetCanonicalizedBody()),
		IntegratedTime: e.GetIntegratedTime(),
		LogIndex:       e.GetLogIndex(),
		LogID:          hex.EncodeToString(e.GetLogId().GetKeyId()),
	})
}

// Fulcio's OIDC issuer extensions: v2 (DER UTF8String) and the deprecated v1 (raw).
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// leaf issues a Fulcio-like code-signing certificate for pub, with an SCT
// from the CT log embedded unless o.NoSCT.
func (s *Sigstore) leaf(subject, issuer string, pub *ecdsa.PublicKey, o Options) (*x509.Certificate, error) {
	issuerDER, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    o.NotBefore, NotAfter: o.NotBefore.Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuerV1, Value: []byte(issuer)}, {Id: oidIssuerV2, Value: issuerDER}},
	}
	if strings.Contains(subject, "://") {
		u, err := url.Parse(subject)
		if err != nil {
			return nil, err
		}
		tmpl.URIs = []*url.URL{u}
	} else {
		tmpl.EmailAddresses = []string{subject}
	}
	pre, err := create(tmpl, s.inter, pub, s.interKey)
	if err != nil || o.NoSCT {
		return pre, err
	}
	// The SCT signs the precertificate: the same TBS without the SCT extension.
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.V1, LogID: ct.LogID{KeyID: sha256.Sum256(mustPKIX(&s.ctKey.PublicKey))},
		Timestamp: uint64(o.NotBefore.UnixMilli())}
	input, err := ct.SerializeSCTSignatureInput(sct, ct.LogEntry{Leaf: ct.MerkleTreeLeaf{
		Version: ct.V1, LeafType: ct.TimestampedEntryLeafType,
		TimestampedEntry: &ct.TimestampedEntry{Timestamp: sct.Timestamp, EntryType: ct.PrecertLogEntryType,
			PrecertEntry: &ct.PreCert{IssuerKeyHash: sha256.Sum256(s.inter.RawSubjectPublicKeyInfo), TBSCertificate: pre.RawTBSCertificate}},
	}})
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(input)
	if sct.Signature.Signature, err = ecdsa.SignASN1(rand.Reader, s.ctKey, h[:]); err != nil {
		return nil, err
	}
	sct.Signature.Algorithm = cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA}
	list, err := ctx509util.MarshalSCTsIntoSCTList([]*ct.SignedCertificateTimestamp{&sct})
	if err != nil {
		return nil, err
	}
	raw, err := cttls.Marshal(*list)
	if err != nil {
		return nil, err
	}
	ext, err := asn1.Marshal(raw)
	if err != nil {
		return nil, err
	}
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier(ctx509.OIDExtensionCTSCT), Value: ext})
	return create(tmpl, s.inter, pub, s.interKey)
}

func mustPKIX(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return der
}

// Attach attaches bundle to image as cosign v3 does: an OCI 1.1 referrer
// manifest of artifact type BundleMediaType with an empty config and the
// bundle as its one layer. Where the registry has no referrers API,
// go-containerregistry updates the sha256-<hex> fallback tag index, as
// cosign does.
func Attach(image name.Digest, bundle []byte, opts ...remote.Option) error {
	repo := image.Context()
	head, err := remote.Head(image, opts...)
	if err != nil {
		return err
	}
	empty := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	layer := static.NewLayer(bundle, BundleMediaType)
	for _, l := range []v1.Layer{empty, layer} {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return err
		}
	}
	ed, _ := empty.Digest()
	ld, _ := layer.Digest()
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	var b protobundle.Bundle
	if protojson.Unmarshal(bundle, &b) == nil {
		_ = json.Unmarshal(b.GetDsseEnvelope().GetPayload(), &st)
	}
	raw, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"artifactType":  BundleMediaType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed.String(), "size": 2},
		"layers":        []any{map[string]any{"mediaType": BundleMediaType, "digest": ld.String(), "size": len(bundle)}},
		"subject":       map[string]any{"mediaType": head.MediaType, "digest": image.DigestStr(), "size": head.Size},
		"annotations": map[string]string{
			"dev.sigstore.bundle.content":       "dsse-envelope",
			"dev.sigstore.bundle.predicateType": st.PredicateType,
			"org.opencontainers.image.created":  time.Now().UTC().Format(time.RFC3339),
		},
	})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	return remote.Put(repo.Digest("sha256:"+hex.EncodeToString(sum[:])), rawManifest(raw), opts...)
}

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// Legacy is a keyless cosign v2 signature: the simple-signing payload and
// the annotations of its sha256-<hex>.sig layer.
type Legacy struct {
	Payload     []byte
	Annotations map[string]string
}

// SignLegacy signs image digest (in repository ref) keyless as cosign v2
// does: a simple-signing payload, signed over its SHA-256, with the
// certificate, the chain and the Rekor hashedrekord entry with its signed
// entry timestamp in annotations (and an RFC 3161 timestamp unless
// o.NoTimestamp). o.NoTlog leaves the Rekor entry out.
func (s *Sigstore) SignLegacy(subject, issuer, ref, digest string, o Options) (*Legacy, error) {
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Minute)
	}
	if o.IntegratedTime.IsZero() {
		o.IntegratedTime = o.NotBefore.Add(time.Minute)
	}
	payload, _ := json.Marshal(map[string]any{
		"critical": map[string]any{"identity": map[string]string{"docker-reference": ref},
			"image": map[string]string{"docker-manifest-digest": digest}, "type": "cosign container image signature"},
		"optional": nil,
	})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf, err := s.leaf(subject, issuer, &key.PublicKey, o)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.inter.Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.fulcio.Raw})...)
	ann := map[string]string{
		"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig),
		"dev.sigstore.cosign/certificate":    string(certPEM),
		"dev.sigstore.cosign/chain":          string(chain),
	}
	if !o.NoTlog {
		body, _ := json.Marshal(map[string]any{"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": map[string]any{
			"data":      map[string]any{"hash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(sum[:])}},
			"signature": map[string]any{"content": base64.StdEncoding.EncodeToString(sig), "publicKey": map[string]string{"content": base64.StdEncoding.EncodeToString(certPEM)}},
		}})
		logID, err := s.vs.RekorLogID()
		if err != nil {
			return nil, err
		}
		set, err := s.vs.RekorSignPayload(tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(body),
			IntegratedTime: o.IntegratedTime.Unix(), LogIndex: 7, LogID: logID})
		if err != nil {
			return nil, err
		}
		rb, _ := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": map[string]any{
			"body": body, "integratedTime": o.IntegratedTime.Unix(), "logIndex": 7, "logID": logID}})
		ann["dev.sigstore.cosign/bundle"] = string(rb)
	}
	if !o.NoTimestamp {
		tsr, err := s.vs.TimestampResponse(sig)
		if err != nil {
			return nil, err
		}
		ts, _ := json.Marshal(map[string][]byte{"SignedRFC3161TimestampResponse": tsr})
		ann["dev.sigstore.cosign/rfc3161timestamp"] = string(ts)
	}
	return &Legacy{Payload: payload, Annotations: ann}, nil
}

// AttachLegacy pushes sigs as the image's sha256-<hex>.sig manifest, one
// layer each, as cosign v2 does.
func AttachLegacy(image name.Digest, sigs []*Legacy, opts ...remote.Option) error {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range sigs {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(l.Payload, "application/vnd.dev.cosign.simplesigning.v1+json"),
			Annotations: l.Annotations})
		if err != nil {
			return err
		}
	}
	tag := image.Context().Tag(strings.Replace(image.DigestStr(), ":", "-", 1) + ".sig")
	return remote.Write(tag, img, opts...)
}
