package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/keys"
)

// registryFlags are the registry options sign, verify and bundle push|pull
// share; the names and meanings are cosign's: one flag skips TLS
// verification, the other allows plain HTTP.
type registryFlags struct {
	allowInsecure bool
	allowHTTP     bool
	timeout       time.Duration
}

func (f *registryFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.allowInsecure, "allow-insecure-registry", false,
		"accept any TLS certificate from the registry (expired, self-signed); for testing only")
	cmd.Flags().BoolVar(&f.allowHTTP, "allow-http-registry", false,
		"allow plain HTTP to a registry that is not on loopback (loopback registries may always use HTTP); for testing only")
	cmd.Flags().DurationVarP(&f.timeout, "timeout", "t", 3*time.Minute, "give up after this long")
}

// client returns the run's one registry client.
func (f *registryFlags) client() *registry.Client {
	return registry.New(registry.Options{AllowHTTP: f.allowHTTP, SkipTLSVerify: f.allowInsecure})
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
