package testbed

import (
	"path/filepath"

	"github.com/nri-csig/nri-csig/internal/toolcache"
)

// NotationVersion is the notation CLI release the x509 witness tests sign with.
const NotationVersion = "v1.3.2"

// EnsureNotation builds the notation CLI into the tool cache (once) and returns
// its path. The module proxy hides notation's version list, so it is built
// from a scratch module that requires exactly NotationVersion.
func EnsureNotation() (string, error) {
	bin, err := toolcache.Ensure(toolcache.Tool{
		Module:   "github.com/notaryproject/notation",
		Packages: []string{"github.com/notaryproject/notation/cmd/notation"},
		Version:  NotationVersion,
		Env:      []string{"CGO_ENABLED=0"},
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(bin, "notation"), nil
}
