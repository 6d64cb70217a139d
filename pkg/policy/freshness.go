package policy

import (
	"errors"
	"fmt"
	"time"
)

// Errors from (*Bundle).ValidAt, tested with errors.Is.
var (
	// ErrExpired: the bundle is past its signed expires. A node never puts
	// such a bundle in force, from a source or from its state directory.
	ErrExpired = errors.New("bundle has expired")
	// ErrNotYetValid: the bundle's signed notBefore is still to come.
	ErrNotYetValid = errors.New("bundle is not valid yet")
)

// Freshness says how close the bundle in force is to its expiry.
type Freshness string

const (
	// Fresh: no expiry, or further away than the stale margin.
	Fresh Freshness = "fresh"
	// Stale: within the stale margin of its expiry; publish a new bundle.
	Stale Freshness = "stale"
	// Expired: past its expiry. A node keeps enforcing it (never "allow
	// everything") and raises an alarm until a newer bundle arrives.
	Expired Freshness = "expired"
)

// MaxStaleMargin is the longest stale margin: a bundle is stale at the latest
// one day before it expires.
const MaxStaleMargin = 24 * time.Hour

// StaleMargin is how long before Expires the bundle counts as stale: 20% of
// its lifetime (NotBefore to Expires) when it has a NotBefore, at most
// MaxStaleMargin; MaxStaleMargin when it has none. Zero without Expires.
func (b *Bundle) StaleMargin() time.Duration {
	if b.Expires.IsZero() {
		return 0
	}
	if b.NotBefore.IsZero() {
		return MaxStaleMargin
	}
	return min(b.Expires.Sub(b.NotBefore)/5, MaxStaleMargin)
}

// FreshnessAt says whether the bundle is fresh, stale or expired at now.
func (b *Bundle) FreshnessAt(now time.Time) Freshness {
	switch {
	case b.Expires.IsZero():
		return Fresh
	case !now.Before(b.Expires):
		return Expired
	case b.Expires.Sub(now) <= b.StaleMargin():
		return Stale
	}
	return Fresh
}

// ValidAt returns an error wrapping ErrExpired or ErrNotYetValid when the
// bundle may not be put in force at now.
func (b *Bundle) ValidAt(now time.Time) error {
	if !b.Expires.IsZero() && !now.Before(b.Expires) {
		return fmt.Errorf("%w: serial %d expired at %s (now %s); publish a bundle signed with a later expires ('nri-csig bundle sign' sets one)",
			ErrExpired, b.Serial, b.Expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !b.NotBefore.IsZero() && now.Before(b.NotBefore) {
		return fmt.Errorf("%w: serial %d is valid from %s (now %s); check the node's clock or wait",
			ErrNotYetValid, b.Serial, b.NotBefore.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}
