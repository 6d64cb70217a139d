package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/keys"
)

// registryFlags are the registry options sign and verify share; the names
// mirror cosign's.
type registryFlags struct {
	allowInsecure bool
	timeout       time.Duration
}

func (f *registryFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.allowInsecure, "allow-insecure-registry", false,
		"allow plain HTTP and unverified TLS to the registry (loopback registries may always use HTTP)")
	cmd.Flags().BoolVar(&f.allowInsecure, "allow-http-registry", false, "alias of --allow-insecure-registry")
	cmd.Flags().DurationVarP(&f.timeout, "timeout", "t", 3*time.Minute, "give up after this long")
}

func (f *registryFlags) context(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), f.timeout)
}

// algorithmFlag validates --signature-algorithm.
func algorithmFlag(s string) (keys.Algorithm, error) {
	switch a := keys.Algorithm(s); a {
	case "", keys.RSAPKCS1SHA256, keys.RSAPSSSHA256, keys.ECDSASHA256:
		return a, nil
	default:
		return "", fmt.Errorf("--signature-algorithm %q: use %s, %s or %s", s, keys.RSAPKCS1SHA256, keys.RSAPSSSHA256, keys.ECDSASHA256)
	}
}

// usageError makes err exit with code 2.
func usageError(err error) error { return &exitError{code: 2, err: err} }
