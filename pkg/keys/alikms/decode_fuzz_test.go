package alikms

import (
	"errors"
	"strings"
	"testing"

	"github.com/alibabacloud-go/tea/tea"

	"github.com/nri-csig/nri-csig/pkg/keys"
)

// FuzzDecodeResponses feeds arbitrary text to what nri-csig reads out of
// KMS answers itself: GetPublicKey's PEM and an error answer's code, data
// and message. It must never panic; an accepted public key is one nri-csig
// signs with, and every error says something.
func FuzzDecodeResponses(f *testing.F) {
	f.Add("-----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\\n-----END PUBLIC KEY-----", "Forbidden.KeyNotFound", `{"RequestId":"r","HttpStatus":404,"Message":"gone"}`, "msg", 404)
	f.Add("", "Throttling", `null`, "", 0)
	f.Add("junk", "", `{"statusCode":"x"}`, "", 503)
	f.Fuzz(func(t *testing.T, pemText, code, data, message string, status int) {
		if pub, err := parsePublicKey(pemText); err == nil {
			if _, err := keys.KeySpec(pub); err != nil {
				t.Fatalf("accepted a key nri-csig refuses: %v", err)
			}
		}
		se := &tea.SDKError{Code: tea.String(code), Data: tea.String(data), Message: tea.String(message), StatusCode: tea.Int(status)}
		err := explain("GetPublicKey", "kms.example", "k", se)
		var ke *Error
		if !errors.As(err, &ke) || strings.TrimSpace(err.Error()) == "" {
			t.Fatalf("explain = %v", err)
		}
	})
}
