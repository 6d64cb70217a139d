package policy

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	b := mustParse(t, validBundle)
	if b.Name != "fleet" || b.Serial != 7 || b.Description != "test bundle" {
		t.Errorf("bundle header = %q %d %q", b.Name, b.Serial, b.Description)
	}
	if got := len(b.Witnesses); got != 3 {
		t.Fatalf("witnesses = %d, want 3", got)
	}
	rel := b.Witness("release")
	if rel == nil || len(rel.Keys) != 2 {
		t.Fatalf("release = %+v, want 2 keys", rel)
	}
	if k := rel.Keys[0]; k.Fingerprint != ecFP(t, 0) || k.Algorithm != ECDSASHA256 || k.KeySpec != "EC_P256" ||
		k.Provider != "alikms" || k.Region != "cn-hangzhou" || k.KeyID != "key-1" || k.KeyVersionID != "v1" {
		t.Errorf("release key 0 = %+v", k)
	}
	if k := b.Witness("legacy").Keys[0]; k.Algorithm != RSAPSSSHA256 || k.KeySpec != "RSA_2048" {
		t.Errorf("legacy key = %s %s", k.Algorithm, k.KeySpec)
	}
	prod := b.Policy("prod")
	if prod.Threshold != 2 || !prod.Enabled || prod.Mode != Enforce || prod.Note != "production" {
		t.Errorf("prod = %+v", prod)
	}
	any := b.Policy("anywhere")
	if any.Threshold != 1 || any.Enabled || any.Mode != Audit {
		t.Errorf("anywhere = %+v (enabled must default to false)", any)
	}
	if e := b.Exemptions[0]; e.Namespace != "payments" || e.ImageDigest != dC || !e.Expires.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("exemption = %+v", e)
	}
	if r := b.Revocations[0]; len(r.Keys) != 1 || r.Keys[0] != ecFP(t, 1) || r.ImageDigests[0] != dB {
		t.Errorf("revocation = %+v", r)
	}
	if got := b.PoliciesUsing("release"); strings.Join(got, ",") != "prod,anywhere" {
		t.Errorf("PoliciesUsing(release) = %v", got)
	}
	if len(b.Keys()) != 4 || b.KeyByFingerprint(ecFP(t, 2)).Witness != "qa" {
		t.Errorf("Keys() = %d, KeyByFingerprint(qa) wrong", len(b.Keys()))
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	b := mustParse(t, validBundle)
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := ParseBundle("out.yaml", out)
	if err != nil {
		t.Fatalf("reparse of Marshal output: %v\n%s", err, out)
	}
	out2, err := b2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Errorf("Marshal is not stable:\n%s\n---\n%s", out, out2)
	}
	if b2.Serial != 7 || len(b2.Policies) != 2 || b2.Policy("anywhere").Threshold != 1 || b2.Policy("prod").Threshold != 2 {
		t.Errorf("round trip lost data: %+v", b2)
	}
}

// replace edits the valid bundle: every rule gets a one-line mutation.
func edited(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(validBundle, old) {
		t.Fatalf("test bug: %q not in validBundle", old)
	}
	return strings.Replace(validBundle, old, new, 1)
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct {
		text string
		want string // substring of the error
	}{
		"unknown top field":        {edited(t, "kind: PolicyBundle\n", "kind: PolicyBundle\nstatus: {}\n"), `bundle.yaml:3:1: status: unknown field`},
		"unknown spec field":       {edited(t, "  note: production\n", "  notes: production\n"), `bundle.yaml:{{LINE notes:}}:3: SecurityPolicy prod: spec.notes: unknown field`},
		"unknown key field":        {edited(t, "      keyId: key-1\n", "      keyID: key-1\n"), `spec.keys[0].keyID: unknown field`},
		"duplicate field":          {edited(t, "  enabled: true\n", "  enabled: true\n  enabled: false\n"), `spec.enabled: field given twice`},
		"wrong apiVersion":         {edited(t, "apiVersion: nri-csig.io/v1alpha1\nkind: Witness\nmetadata:\n  name: qa", "apiVersion: v1\nkind: Witness\nmetadata:\n  name: qa"), `apiVersion: "v1" is not supported`},
		"unknown kind":             {edited(t, "kind: Exemption", "kind: Exception"), `unknown kind "Exception"`},
		"missing name":             {edited(t, "  name: hotfix\n", "  other: x\n"), `metadata.other: unknown field`},
		"bad name":                 {edited(t, "  name: hotfix\n", "  name: hot fix\n"), `"hot fix" is not a valid name`},
		"duplicate witness":        {edited(t, "  name: legacy\n", "  name: qa\n"), `Witness "qa" is already defined at line`},
		"duplicate policy":         {edited(t, "  name: anywhere\n", "  name: prod\n"), `SecurityPolicy "prod" is already defined`},
		"dangling witness":         {edited(t, "witnesses: [release, qa]", "witnesses: [release, qa2]"), `SecurityPolicy prod: spec.witnesses: witness "qa2" is not defined`},
		"empty key list":           {edited(t, "  keys:\n    - publicKey: |\n{{PEM2}}\n", "  keys: []\n"), `spec.keys: list must not be empty`},
		"missing keys":             {edited(t, "  keys:\n    - publicKey: |\n{{PEM2}}\n", "  description: x\n"), `Witness qa: spec.keys: required field is missing`},
		"bad public key":           {edited(t, "    - publicKey: |\n{{PEM2}}\n", "    - publicKey: nope\n"), `no PEM block found`},
		"fingerprint mismatch":     {edited(t, "fingerprint: {{FP0}}", "fingerprint: {{FP1}}"), `does not match the public key`},
		"algorithm mismatch":       {edited(t, "algorithm: RSA_PSS_SHA_256", "algorithm: ECDSA_SHA_256"), `does not fit an RSA key`},
		"key in two witnesses":     {edited(t, "{{PEM2}}", "{{PEM1}}"), `is already a key of witness "release"`},
		"threshold too high":       {edited(t, "threshold: 1", "threshold: 3"), `spec.threshold: 3 is more than the 2 witnesses`},
		"threshold zero":           {edited(t, "threshold: 1", "threshold: 0"), `spec.threshold: must be at least 1`},
		"threshold not a number":   {edited(t, "threshold: 1", "threshold: one"), `spec.threshold: expected a whole number`},
		"unknown mode":             {edited(t, "mode: audit", "mode: warn"), `unknown mode "warn"; use enforce or audit`},
		"enabled not bool":         {edited(t, "enabled: true", "enabled: \"yes\""), `spec.enabled: expected true or false`},
		"empty namespaces":         {edited(t, "namespaces: [default, payments]", "namespaces: []"), `spec.namespaces: list must not be empty`},
		"bad namespace":            {edited(t, "namespaces: [default, payments]", "namespaces: [Default]"), `"Default" is not a Kubernetes namespace name`},
		"duplicate namespace":      {edited(t, "namespaces: [default, payments]", "namespaces: [default, default]"), `"default" is listed twice`},
		"missing clusters":         {edited(t, "  clusters: [c1]\n", ""), `SecurityPolicy prod: spec.clusters: required field is missing`},
		"bad exemption digest":     {edited(t, "imageDigest: sha256:cccc", "imageDigest: sha256:CCCC"), `is not a digest`},
		"exemption no expiry":      {edited(t, "  expires: 2026-12-01T00:00:00Z\n", ""), `spec.expires: required field is missing`},
		"exemption bad expiry":     {edited(t, "expires: 2026-12-01T00:00:00Z", "expires: tomorrow"), `is not an RFC 3339 time`},
		"exemption both":           {edited(t, "  reason: INC-42 hotfix\n", "  reason: INC-42 hotfix\n  pod: web-1\n"), `give imageDigest or pod, not both`},
		"exemption no reason":      {edited(t, "  reason: INC-42 hotfix\n", ""), `Exemption hotfix: spec.reason: required field is missing`},
		"revocation bad fp":        {edited(t, "keys: [{{FP1}}]", "keys: [abc]"), `"abc" is not a key fingerprint`},
		"revocation bad trust id":  {edited(t, "keys: [{{FP1}}]", "keys: [x509:sha256:abc]"), `"x509:sha256:abc" is not a key fingerprint`},
		"unknown witness kind":     {edited(t, "  keys:\n    - publicKey: |\n{{PEM2}}\n", "  kind: pgp\n  keys:\n    - publicKey: |\n{{PEM2}}\n"), `spec.kind: unknown witness kind "pgp"`},
		"keys in x509 witness":     {edited(t, "  keys:\n    - publicKey: |\n{{PEM2}}\n", "  kind: x509\n  x509: {}\n  keys:\n    - publicKey: |\n{{PEM2}}\n"), `spec.keys: a witness of kind x509 has no keys section`},
		"sigstore section missing": {edited(t, "  keys:\n    - publicKey: |\n{{PEM2}}\n", "  kind: sigstore\n"), `Witness qa: spec.sigstore: required field is missing`},
		"x509 in keys witness":     {edited(t, "  keys:\n    - publicKey: |\n{{PEM2}}\n", "  x509: {}\n  keys:\n    - publicKey: |\n{{PEM2}}\n"), `spec.x509: a witness of kind keys has no x509 section`},
		"revocation bad digest":    {edited(t, "imageDigests: [sha256:bbbb", "imageDigests: [md5:bbbb"), `is not a digest`},
		"revocation empty":         {edited(t, "  keys: [{{FP1}}]\n  imageDigests: [sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb]\n", ""), `give keys (fingerprints) or imageDigests`},
		"serial missing":           {edited(t, "  serial: 7\n", ""), `PolicyBundle fleet: spec.serial: required field is missing`},
		"serial zero":              {edited(t, "serial: 7", "serial: 0"), `spec.serial: must be at least 1`},
		"serial negative":          {edited(t, "serial: 7", "serial: -1"), `spec.serial: expected a whole number`},
		"two bundle docs":          {validBundle + "---\napiVersion: nri-csig.io/v1alpha1\nkind: PolicyBundle\nmetadata: {name: x}\nspec: {serial: 1}\n", `a second PolicyBundle document`},
		"no bundle doc":            {strings.SplitN(validBundle, "---\n", 2)[1], `no PolicyBundle document`},
		"alias":                    {edited(t, "  clusters: [c1]\n", "  clusters: &c [c1]\n  namespaces: *c\n"), `aliases are not allowed`},
		"not yaml":                 {"a: [", `invalid YAML`},
		"not a mapping":            {"- a\n- b\n", `expected a mapping`},
		"int where string":         {edited(t, "note: production", "note: 12"), `expected a string, found int "12"; quote the value`},
		"missing spec":             {edited(t, "spec:\n  namespace: payments", "sepc:\n  namespace: payments"), `sepc: unknown field`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			text := fill(t, tc.text)
			want := tc.want
			// {{LINE x}} stands for the line on which x first appears.
			if i := strings.Index(want, "{{LINE "); i >= 0 {
				j := strings.Index(want[i:], "}}") + i
				needle := want[i+7 : j]
				line := strings.Count(text[:strings.Index(text, needle)], "\n") + 1
				want = want[:i] + strconv.Itoa(line) + want[j+2:]
			}
			_, err := ParseBundle("bundle.yaml", []byte(text))
			if err == nil {
				t.Fatalf("ParseBundle succeeded; want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("ParseBundle error = %v\nwant it to contain %q", err, want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "bundle.yaml" {
				t.Errorf("error %v is not a *ParseError naming the file", err)
			}
		})
	}
}

func TestParseErrorsAreCollected(t *testing.T) {
	text := edited(t, "mode: audit", "mode: warn")
	text = strings.Replace(text, "threshold: 1", "threshold: 5", 1)
	_, err := ParseBundle("b.yaml", []byte(fill(t, text)))
	if err == nil || !strings.Contains(err.Error(), "unknown mode") || !strings.Contains(err.Error(), "threshold: 5 is more") {
		t.Errorf("ParseBundle error = %v; want both problems reported", err)
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := ParseBundle("big.yaml", make([]byte, MaxBundleSize+1))
	if err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("ParseBundle(huge) = %v; want a size error", err)
	}
}

func TestWeakKeysRefused(t *testing.T) {
	_, _, err := ParsePublicKeyPEM([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	if err == nil || !strings.Contains(err.Error(), "not a public key") {
		t.Errorf("private PEM: %v", err)
	}
}

func TestValidDigest(t *testing.T) {
	for d, want := range map[string]bool{
		dA: true, "sha512:" + strings.Repeat("a", 128): true,
		"sha256:" + strings.Repeat("a", 63): false, "sha256:" + strings.Repeat("A", 64): false,
		"md5:" + strings.Repeat("a", 32): false, strings.Repeat("a", 64): false, "": false,
	} {
		if got := ValidDigest(d); got != want {
			t.Errorf("ValidDigest(%q) = %v; want %v", d, got, want)
		}
	}
}

func TestValidKeyID(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	for id, want := range map[string]bool{
		"sha256:" + hex64:           true,
		"x509:sha256:" + hex64:      true,
		"sigstore:sha256:" + hex64:  true,
		"pgp:sha256:" + hex64:       false,
		"x509:" + hex64:             false,
		"x509:x509:sha256:" + hex64: false,
		"sha256:" + hex64[:10]:      false,
		"sha512:" + hex64 + hex64:   false,
		"":                          false,
	} {
		if got := ValidKeyID(id); got != want {
			t.Errorf("ValidKeyID(%q) = %v, want %v", id, got, want)
		}
	}
}
