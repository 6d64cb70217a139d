package testbed

import (
	"errors"
	"fmt"
	"time"
)

type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// Permanent marks an error that polling should not wait out.
func Permanent(err error) error { return permanentError{err} }

// Poll calls f until it returns nil, a Permanent error, or the deadline passes;
// then it returns f's last error. Tests wait with Poll, never with sleeps.
func Poll(deadline time.Duration, f func() error) error {
	end := time.Now().Add(deadline)
	wait := 10 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanentError
		if errors.As(err, &p) {
			return p.error
		}
		if time.Now().After(end) {
			return fmt.Errorf("after %s: %w", deadline, err)
		}
		time.Sleep(wait)
		if wait < 200*time.Millisecond {
			wait *= 2
		}
	}
}
