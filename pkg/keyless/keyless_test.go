package keyless

import (
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nri-csig/nri-csig/internal/testsigstore"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

const (
	digest   = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	otherImg = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	signer   = "release@example.com"
	issuer   = "https://accounts.example.com"
	workflow = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
	ghIssuer = "https://token.actions.githubusercontent.com"
)

var (
	sharedOnce sync.Once
	shared     *testsigstore.Sigstore
	sharedRoot []byte
)

// sigstore is one offline Sigstore for the package's tests (key generation
// is the slow part).
func sigstore(t *testing.T) (*testsigstore.Sigstore, []byte) {
	t.Helper()
	sharedOnce.Do(func() {
		s, err := testsigstore.New()
		if err != nil {
			t.Fatal(err)
		}
		tr, err := s.TrustedRoot()
		if err != nil {
			t.Fatal(err)
		}
		shared, sharedRoot = s, tr
	})
	if shared == nil {
		t.Fatal("no test sigstore")
	}
	return shared, sharedRoot
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(t *testing.T, subject, iss string, o testsigstore.Options) []byte {
	t.Helper()
	s, _ := sigstore(t)
	b, err := s.Sign(subject, iss, testsigstore.Statement("registry.example/app", digest, testsigstore.CosignSignPredicateType), o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func verifier(t *testing.T, mod func(*Trust)) *Verifier {
	t.Helper()
	_, tr := sigstore(t)
	trust := Trust{TrustedRoot: tr, Identities: []Identity{{Issuer: issuer, Subject: signer}}}
	if mod != nil {
		mod(&trust)
	}
	v, err := NewVerifier(trust)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// edit rewrites a bundle through its protobuf form.
func edit(t *testing.T, blob []byte, f func(*protobundle.Bundle)) []byte {
	t.Helper()
	var b protobundle.Bundle
	if err := protojson.Unmarshal(blob, &b); err != nil {
		t.Fatal(err)
	}
	f(&b)
	out, err := protojson.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyBundleAdmitsTrustedIdentity(t *testing.T) {
	for _, tc := range []struct {
		name            string
		subject, issuer string
		id              Identity
	}{
		{"exact email and issuer", signer, issuer, Identity{Issuer: issuer, Subject: signer}},
		{"regexp subject", workflow, ghIssuer, Identity{Issuer: ghIssuer, SubjectRegExp: `^https://github\.com/example/app/\.github/workflows/release\.yml@refs/heads/.+$`}},
		{"regexp issuer", signer, issuer, Identity{IssuerRegExp: `^https://accounts\.example\.com$`, Subject: signer}},
		{"second of two identities", signer, issuer, Identity{Issuer: issuer, Subject: signer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier(t, func(tr *Trust) {
				tr.Identities = []Identity{tc.id}
				if tc.name == "second of two identities" {
					tr.Identities = []Identity{{Issuer: issuer, Subject: "someone@example.com"}, tc.id}
				}
			})
			if err := v.VerifyBundle(digest, sign(t, tc.subject, tc.issuer, testsigstore.Options{})); err != nil {
				t.Fatalf("VerifyBundle: %v", err)
			}
		})
	}
}

func TestVerifyBundleRefuses(t *testing.T) {
	other, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	otherBundle, err := other.Sign(signer, issuer, testsigstore.Statement("app", digest, testsigstore.CosignSignPredicateType), testsigstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := sigstore(t)
	attestation, err := s.Sign(signer, issuer, testsigstore.Statement("app", digest, "https://slsa.dev/provenance/v1"), testsigstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, signer, issuer, testsigstore.Options{})
	expiredAt := time.Now().Add(-2 * time.Hour)

	for _, tc := range []struct {
		name   string
		trust  func(*Trust)
		digest string
		blob   []byte
		want   error
		reason string
	}{
		{name: "wrong SAN", trust: func(tr *Trust) { tr.Identities = []Identity{{Issuer: issuer, Subject: "other@example.com"}} },
			blob: good, want: ErrIdentity, reason: `expected SAN value "other@example.com", got "release@example.com"`},
		{name: "wrong SAN regexp", trust: func(tr *Trust) { tr.Identities = []Identity{{Issuer: issuer, SubjectRegExp: `^admin@example\.com$`}} },
			blob: good, want: ErrIdentity, reason: `SAN value to match regex`},
		{name: "wrong issuer", trust: func(tr *Trust) {
			tr.Identities = []Identity{{Issuer: "https://other-idp.example.com", Subject: signer}}
		},
			blob: good, want: ErrIdentity, reason: `expected issuer value "https://other-idp.example.com", got "https://accounts.example.com"`},
		{name: "another Sigstore", blob: otherBundle, want: ErrUntrusted},
		{name: "tampered inclusion proof", want: ErrUntrusted, reason: "inclusion",
			blob: edit(t, good, func(b *protobundle.Bundle) { b.VerificationMaterial.TlogEntries[0].InclusionProof.RootHash[0] ^= 1 })},
		{name: "tampered checkpoint", want: ErrUntrusted, reason: "checkpoint",
			blob: edit(t, good, func(b *protobundle.Bundle) {
				cp := b.VerificationMaterial.TlogEntries[0].InclusionProof.Checkpoint
				cp.Envelope = strings.Replace(cp.Envelope, "rekor.localhost - ", "rekor.localhost - 9", 1)
			})},
		{name: "tampered signed entry timestamp", want: ErrUntrusted, reason: "not enough verified log entries",
			blob: edit(t, good, func(b *protobundle.Bundle) {
				b.VerificationMaterial.TlogEntries[0].InclusionPromise.SignedEntryTimestamp[10] ^= 1
			})},
		{name: "certificate expired at signing time, no timestamp", want: ErrUntrusted, reason: "outside certificate validity",
			blob: sign(t, signer, issuer, testsigstore.Options{NotBefore: expiredAt, IntegratedTime: time.Now(), NoTimestamp: true})},
		{name: "certificate expired at signing time, timestamped now", want: ErrUntrusted, reason: "certificate",
			trust: func(tr *Trust) { tr.InsecureIgnoreTlog = true },
			blob:  sign(t, signer, issuer, testsigstore.Options{NotBefore: expiredAt, NoTlog: true})},
		// sigstore-go requires the proof in v0.2+ bundles; the promise alone is not enough.
		{name: "inclusion promise without proof", want: signature.ErrMalformed, reason: "inclusion proof missing",
			blob: sign(t, signer, issuer, testsigstore.Options{NoInclusionProof: true})},
		{name: "no tlog entry", want: ErrUntrusted, reason: "not enough verified log entries",
			blob: sign(t, signer, issuer, testsigstore.Options{NoTlog: true})},
		{name: "no tlog and no timestamp, tlog ignored", want: ErrUntrusted, reason: "timestamps",
			trust: func(tr *Trust) { tr.InsecureIgnoreTlog = true },
			blob:  sign(t, signer, issuer, testsigstore.Options{NoTlog: true, NoTimestamp: true})},
		{name: "no SCT", want: ErrUntrusted, reason: "SCT",
			blob: sign(t, signer, issuer, testsigstore.Options{NoSCT: true})},
		{name: "attestation", blob: attestation, want: signature.ErrWrongType, reason: "is an attestation, not an image signature"},
		{name: "another image", digest: otherImg, blob: good, want: verify.ErrDigestMismatch},
		{name: "not a bundle", blob: []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`), want: signature.ErrMalformed},
		{name: "oversized", blob: append([]byte(`{"x":"`), append([]byte(strings.Repeat("a", signature.MaxBundleSize)), `"}`...)...), want: signature.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.digest
			if d == "" {
				d = digest
			}
			err := verifier(t, tc.trust).VerifyBundle(d, tc.blob)
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyBundle: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("VerifyBundle: %v, want the reason %q", err, tc.reason)
			}
		})
	}
}

// The signing time decides, not the current time: a certificate that
// expired an hour ago verifies when the log saw the signature inside its
// validity; and the insecure switches do what they say.
func TestVerifyBundleSigningTime(t *testing.T) {
	past := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name  string
		trust func(*Trust)
		o     testsigstore.Options
	}{
		{name: "expired now, logged in time", o: testsigstore.Options{NotBefore: past, IntegratedTime: past.Add(5 * time.Minute), NoTimestamp: true}},
		{name: "tlog ignored, TSA timestamp", trust: func(tr *Trust) { tr.InsecureIgnoreTlog = true }, o: testsigstore.Options{NoTlog: true}},
		{name: "SCT ignored", trust: func(tr *Trust) { tr.InsecureIgnoreSCT = true }, o: testsigstore.Options{NoSCT: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := verifier(t, tc.trust).VerifyBundle(digest, sign(t, signer, issuer, tc.o)); err != nil {
				t.Fatalf("VerifyBundle: %v", err)
			}
		})
	}
}

func TestNewVerifierRefusesBadTrust(t *testing.T) {
	_, tr := sigstore(t)
	for _, tc := range []struct {
		name   string
		trust  Trust
		reason string
	}{
		{"no root", Trust{Identities: []Identity{{Issuer: issuer, Subject: signer}}}, "trusted root"},
		{"not a root", Trust{TrustedRoot: []byte(`{"mediaType":"x"}`), Identities: []Identity{{Issuer: issuer, Subject: signer}}}, "media type"},
		{"no identities", Trust{TrustedRoot: tr}, "no identities"},
		{"no subject", Trust{TrustedRoot: tr, Identities: []Identity{{Issuer: issuer}}}, "subject alternative name"},
		{"bad regexp", Trust{TrustedRoot: tr, Identities: []Identity{{Issuer: issuer, SubjectRegExp: "("}}}, "identity 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(tc.trust)
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("NewVerifier: %v, want an error with %q", err, tc.reason)
			}
		})
	}
}

// A genuine public-good bundle (sigstore-go's test data: Fulcio chain, SCT,
// Rekor signed entry timestamp from November 2022) verifies against the
// public-good trusted root, with no network. It is an SLSA provenance
// attestation, so as an image signature it is refused.
func TestPublicGoodBundle(t *testing.T) {
	tr, err := os.ReadFile("testdata/public-good-trusted-root.json")
	if err != nil {
		t.Fatal(err)
	}
	blob, err := os.ReadFile("testdata/public-good-dsse.sigstore.json")
	if err != nil {
		t.Fatal(err)
	}
	// The statement's subject: slsa-provenance-0.0.7.tgz.
	sum, _ := hex.DecodeString("bbfd372fc9beeb777fe35d05bb10c0c70a9733d366a75fed7dd18866c7391de3ee7e88ba74dd47abf3e15c845e547fcf0e5c3da80854c751554224d3a6d4e55f")
	trust := func(subject string) *Verifier {
		v, err := NewVerifier(Trust{TrustedRoot: tr, Identities: []Identity{{Issuer: "https://github.com/login/oauth", Subject: subject}}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	res, err := trust("brian@dehamer.com").verifyEntity(blob, "sha512", sum)
	if err != nil {
		t.Fatalf("genuine bundle: %v", err)
	}
	if len(res.VerifiedTimestamps) == 0 || res.VerifiedTimestamps[0].Timestamp.Year() != 2022 {
		t.Errorf("verified timestamps %+v, want the log's 2022 integrated time", res.VerifiedTimestamps)
	}
	if _, err := trust("someone@else.com").verifyEntity(blob, "sha512", sum); !errors.Is(err, ErrIdentity) {
		t.Errorf("another SAN: %v, want ErrIdentity", err)
	}
	sum[0] ^= 1
	if _, err := trust("brian@dehamer.com").verifyEntity(blob, "sha512", sum); !errors.Is(err, ErrUntrusted) {
		t.Errorf("another artifact digest: %v, want ErrUntrusted", err)
	}
	if err := trust("brian@dehamer.com").VerifyBundle(digest, blob); !errors.Is(err, signature.ErrWrongType) {
		t.Errorf("as an image signature: %v, want ErrWrongType (v0.1 bundle of an attestation)", err)
	}
}
