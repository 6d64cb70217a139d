package alikms_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
)

// FuzzKMSResponse answers every KMS call (DescribeKey, ListKeyVersions,
// GetPublicKey, AsymmetricSign) with arbitrary bytes and a status: the SDK's
// response decoding and ours must never panic, every failure must carry a
// message, and a key is only returned with a public key that can verify.
func FuzzKMSResponse(f *testing.F) {
	f.Add(200, []byte(`{"KeyMetadata":{"KeyId":"k","KeySpec":"RSA_2048","KeyUsage":"SIGN/VERIFY","KeyState":"Enabled","PrimaryKeyVersion":"v1"},"RequestId":"r"}`))
	f.Add(200, []byte(`{"PublicKey":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----","KeyId":"k","KeyVersionId":"v1"}`))
	f.Add(200, []byte(`{"KeyVersions":{"KeyVersion":[{"KeyVersionId":"v1","CreationDate":"2024-01-01T00:00:00Z"}]},"TotalCount":1}`))
	f.Add(400, []byte(`{"Code":"Forbidden.KeyNotFound","Message":"not found","RequestId":"r","HostId":"kms"}`))
	f.Add(500, []byte(`null`))
	f.Add(200, []byte(``))
	var body atomic.Pointer[[]byte]
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Load()))
		w.Write(*body.Load())
	}))
	defer srv.Close()
	cfg := alikms.Config{Endpoint: srv.URL, Credential: staticAK(f, kmsfake.AccessKeyID, kmsfake.AccessKeySecret),
		ConnectTimeout: time.Second, ReadTimeout: time.Second}
	f.Fuzz(func(t *testing.T, code int, b []byte) {
		if code < 100 || code > 599 {
			code = 200 + (code%400+400)%400
		}
		status.Store(int32(code))
		body.Store(&b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		k, err := alikms.Open(ctx, "alikms://"+kmsfake.Region+"/k", "", cfg)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an empty error")
			}
			return
		}
		pub, err := k.PublicKey(ctx)
		if err != nil || pub == nil {
			t.Fatalf("Open returned a key without a public key: %v", err)
		}
		if _, err := keys.KeySpec(pub); err != nil {
			t.Fatalf("Open returned a key nri-csig does not accept: %v", err)
		}
		if _, err := k.SignDigest(ctx, make([]byte, 32)); err != nil && errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a bounded answer took the whole deadline: %v", err)
		}
	})
}
