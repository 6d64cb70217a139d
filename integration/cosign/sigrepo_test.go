//go:build integration

package cosign

import (
	"strings"
	"testing"
)

// TestSignatureRepositoryInterop: cosign with COSIGN_REPOSITORY and nri-csig
// with --signature-repository (or the same variable) put signatures in the
// same place and each verifies the other's there: the legacy tag and the
// bundle format (referrers API and tag fallback). Without the repository,
// both find nothing.
func TestSignatureRepositoryInterop(t *testing.T) {
	t.Run("cosign signs, nri-csig verifies", func(t *testing.T) {
		priv, pub := cosignKeyPair(t, "ecdsa")
		for _, tc := range []struct {
			name         string
			legacy       bool
			referrersAPI bool
			format       string
		}{
			{"legacy", true, false, "cosign-simplesigning"},
			{"bundle/tag-fallback", false, false, "sigstore-bundle"},
			{"bundle/referrers-api", false, true, "sigstore-bundle"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				host := startRegistry(t, tc.referrersAPI)
				tag, digestRef := pushImage(t, host, "app", randomImage(t))
				sigs := host + "/team/sigs"
				args := append(append([]string{}, cosignSignFlags...), "--key", priv)
				if tc.legacy {
					args = append(args, "--new-bundle-format=false")
				}
				env := []string{"COSIGN_PASSWORD=test-password", "COSIGN_REPOSITORY=" + sigs}
				if r := exe(t, env, cosignBin, append(args, digestRef)...); r.code != 0 {
					t.Fatalf("COSIGN_REPOSITORY=%s cosign sign: exit %d\n%s", sigs, r.code, r.out)
				}
				if r := exe(t, env, cosignBin, append(cosignVerifyFlags, "--key", pub, digestRef)...); r.code != 0 {
					t.Fatalf("cosign verify with COSIGN_REPOSITORY (its own signature): exit %d\n%s", r.code, r.out)
				}
				// cosign put nothing in the image's repository.
				if r := cosign(t, append(cosignVerifyFlags, "--key", pub, digestRef)...); r.code == 0 {
					t.Fatalf("cosign verify without COSIGN_REPOSITORY succeeded: the signature is in the image's repository\n%s", r.out)
				}
				rep, r := verifyJSON(t, "--key", pub, "--signature-repository", sigs, tag)
				if r.code != 0 || !rep.Verified || rep.Result.Verified[0].Format != tc.format {
					t.Fatalf("nri-csig verify --signature-repository %s: exit %d, want %s verified\n%s", sigs, r.code, tc.format, r.out)
				}
				if r := exe(t, []string{"COSIGN_REPOSITORY=" + sigs}, csigBin, "verify", "--key", pub, tag); r.code != 0 {
					t.Fatalf("COSIGN_REPOSITORY=%s nri-csig verify: exit %d\n%s", sigs, r.code, r.out)
				}
				if r := csig(t, "verify", "--key", pub, tag); r.code != 1 || !strings.Contains(r.out, "no signatures") {
					t.Fatalf("nri-csig verify in the image's repository: exit %d; want 1, no signatures\n%s", r.code, r.out)
				}
			})
		}
	})

	t.Run("nri-csig signs, cosign verifies", func(t *testing.T) {
		host := startRegistry(t, false)
		priv, pub := localKey(t)
		tag, digestRef := pushImage(t, host, "app", randomImage(t))
		sigs := host + "/team/sigs"
		if r := csig(t, "sign", "--key", priv, "--signature-repository", sigs, tag); r.code != 0 || !strings.Contains(r.out, "stored in: "+sigs+":sha256-") {
			t.Fatalf("nri-csig sign --signature-repository: exit %d\n%s", r.code, r.out)
		}
		if r := exe(t, []string{"COSIGN_REPOSITORY=" + sigs}, cosignBin, append(cosignVerifyFlags, "--key", pub, digestRef)...); r.code != 0 {
			t.Fatalf("COSIGN_REPOSITORY=%s cosign verify: exit %d\n%s", sigs, r.code, r.out)
		}
		if r := cosign(t, append(cosignVerifyFlags, "--key", pub, digestRef)...); r.code == 0 {
			t.Fatalf("cosign verify without COSIGN_REPOSITORY found the signature in the image's repository\n%s", r.out)
		}
		// $COSIGN_REPOSITORY alone steers nri-csig sign the same way.
		tag2, digestRef2 := pushImage(t, host, "app2", randomImage(t))
		if r := exe(t, []string{"COSIGN_REPOSITORY=" + sigs}, csigBin, "sign", "--key", priv, tag2); r.code != 0 {
			t.Fatalf("COSIGN_REPOSITORY=%s nri-csig sign: exit %d\n%s", sigs, r.code, r.out)
		}
		if r := exe(t, []string{"COSIGN_REPOSITORY=" + sigs}, cosignBin, append(cosignVerifyFlags, "--key", pub, digestRef2)...); r.code != 0 {
			t.Fatalf("cosign verify of the signature nri-csig made with $COSIGN_REPOSITORY: exit %d\n%s", r.code, r.out)
		}
	})
}
