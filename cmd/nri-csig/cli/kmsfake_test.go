//go:build !nodeonly

package cli

import (
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
)

// startFakeKMS starts the local KMS endpoint and sets the credentials the
// SDK's default chain reads, for the duration of the test.
func startFakeKMS(t *testing.T) *kmsfake.Server {
	t.Helper()
	fake, err := kmsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", kmsfake.AccessKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", kmsfake.AccessKeySecret)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	return fake
}
