package signature

import (
	"errors"
	"strings"
	"testing"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// cosignPayload is what cosign v3.1.3 writes for "cosign sign --new-bundle-format=false".
const cosignPayload = `{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/app"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"},"optional":null}`

func TestParsePayload(t *testing.T) {
	tests := map[string]struct {
		in      string
		wantErr error
	}{
		"cosign":            {in: cosignPayload},
		"annotations":       {in: `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"},"optional":{"a":"b","n":1}}`},
		"v3 type":           {in: strings.Replace(cosignPayload, CosignType, CosignSignPredicateType, 1)},
		"wrong type":        {in: strings.Replace(cosignPayload, CosignType, "atomic container signature", 1), wantErr: ErrWrongType},
		"unknown critical":  {in: strings.Replace(cosignPayload, `"type"`, `"extra":1,"type"`, 1), wantErr: ErrMalformed},
		"unknown top-level": {in: strings.Replace(cosignPayload, `"optional"`, `"x":1,"optional"`, 1), wantErr: ErrMalformed},
		"duplicate key":     {in: strings.Replace(cosignPayload, `"type"`, `"type":"x","type"`, 1), wantErr: ErrMalformed},
		"bad digest":        {in: strings.Replace(cosignPayload, "sha256:0", "sha256:X", 1), wantErr: ErrMalformed},
		"sha512":            {in: strings.Replace(cosignPayload, "sha256:", "sha512:", 1), wantErr: ErrMalformed},
		"corrupt":           {in: cosignPayload[:40], wantErr: ErrMalformed},
		"trailing":          {in: cosignPayload + "{}", wantErr: ErrMalformed},
		"empty":             {in: "", wantErr: ErrMalformed},
		"too large":         {in: `{"critical":{},"optional":{"a":"` + strings.Repeat("x", MaxPayloadSize) + `"}}`, wantErr: ErrMalformed},
		"too deep":          {in: strings.Repeat("[", 100) + strings.Repeat("]", 100), wantErr: ErrMalformed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := ParsePayload([]byte(tc.in))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParsePayload() error = %v; want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePayload() error = %v", err)
			}
			if p.Digest() != testDigest {
				t.Fatalf("Digest() = %q; want %q", p.Digest(), testDigest)
			}
		})
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	p, err := NewPayload(testDigest, "reg/app", map[string]string{"by": "ci"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePayload(b)
	if err != nil {
		t.Fatalf("ParsePayload(%s) error = %v", b, err)
	}
	if got.Digest() != testDigest || got.Optional["by"] != "ci" || got.Critical.Identity.DockerReference != "reg/app" {
		t.Fatalf("round trip = %+v; want %+v", got, p)
	}
	if _, err := NewPayload("latest", "reg/app", nil); err == nil {
		t.Fatal("NewPayload(tag) succeeded; want an error")
	}
}

func TestTags(t *testing.T) {
	if got, want := SignatureTag(testDigest), "sha256-"+testDigest[7:]+".sig"; got != want {
		t.Errorf("SignatureTag() = %q; want %q", got, want)
	}
}

func TestParseManifestLimits(t *testing.T) {
	layer := `{"mediaType":"` + SimpleSigningMediaType + `","digest":"` + testDigest + `","size":10}`
	mk := func(n int) []byte {
		return []byte(`{"schemaVersion":2,"config":{},"layers":[` + strings.TrimSuffix(strings.Repeat(layer+",", n), ",") + `]}`)
	}
	if m, err := ParseManifest(mk(1)); err != nil || len(m.Layers) != 1 {
		t.Fatalf("ParseManifest(1 layer) = %v, %v", m, err)
	}
	if _, err := ParseManifest(mk(1000)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("ParseManifest(1000 layers) error = %v; want ErrTooMany", err)
	}
	if _, err := ParseManifest([]byte(`{"schemaVersion":1}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseManifest(schema 1) error = %v; want ErrMalformed", err)
	}
}

func TestParseBundle(t *testing.T) {
	b, err := ParseSigstoreBundle([]byte(testBundle))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseStatement(b.DSSEEnvelope.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Covers(testDigest) {
		t.Fatalf("statement %+v does not cover %s", s, testDigest)
	}
	if _, err := ParseSigstoreBundle([]byte(strings.Replace(testBundle, "eyJf", "!!!!", 1))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseSigstoreBundle(corrupt base64) error = %v; want ErrMalformed", err)
	}
	if _, err := ParseSigstoreBundle([]byte(`{"mediaType":"` + BundleMediaType + `","messageSignature":{}}`)); !errors.Is(err, ErrWrongType) {
		t.Fatalf("ParseSigstoreBundle(messageSignature) error = %v; want ErrWrongType", err)
	}
}

// testBundle has the shape of a cosign v3.1.3 key-based bundle (signature not valid).
// Its payload is {"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"0123…"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}.
var testBundle = `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"abc"}},"dsseEnvelope":{"payload":"` +
	b64(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"`+testDigest[7:]+`"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}`) +
	`","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEUCIQ=="}]}}`
