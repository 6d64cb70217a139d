package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
)

// verifyDigest is a temporary stand-in for keys.VerifyDigest until the keys
// branch is merged.
func verifyDigest(pub any, alg string, digest, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg == "RSA_PSS_SHA_256" {
			return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ecdsa: invalid signature")
		}
		return nil
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
}
