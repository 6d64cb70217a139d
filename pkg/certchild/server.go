package certchild

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// Build returns the in-process verifier of a certificate witness's trust
// (pkg/witnessverify's, in the full binary).
type Build func(*policy.Key) (verify.CertVerifier, error)

// maxVerifiers bounds the verifiers the child keeps, by trust hash: a
// bundle has few certificate witnesses.
const maxVerifiers = 64

// ServerIdle is how long the child waits for a request before it exits. It
// is longer than the client's Idle, after which the client closes stdin:
// this is the backstop for a client that is gone without closing it.
const ServerIdle = 5 * time.Minute

// Serve answers the requests read from r on w until r ends (the daemon
// closed the pipe or exited) or idle passes without a request. Requests are
// judged concurrently, at most GOMAXPROCS at a time. It returns an error
// only for a stream that is not this protocol.
func Serve(r io.Reader, w io.Writer, build Build, idle time.Duration) error {
	s := &server{w: w, build: build, verifiers: map[[sha256.Size]byte]built{}}
	frames := make(chan []byte)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			b, err := readFrame(r, maxRequest)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case frames <- b:
			case <-done:
				return
			}
		}
	}()
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return nil
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading a request: %w", err)
		case b := <-frames:
			timer.Reset(idle)
			var req request
			if err := json.Unmarshal(b, &req); err != nil {
				return fmt.Errorf("decoding a request: %w", err)
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				s.reply(s.answer(&req))
			})
		}
	}
}

type server struct {
	wmu sync.Mutex
	w   io.Writer

	build     Build
	mu        sync.Mutex
	verifiers map[[sha256.Size]byte]built
}

type built struct {
	v   verify.CertVerifier
	err error
}

// verifier returns the verifier of a trust, built once.
func (s *server) verifier(trustJSON []byte) (verify.CertVerifier, error) {
	sum := sha256.Sum256(trustJSON)
	s.mu.Lock()
	b, ok := s.verifiers[sum]
	s.mu.Unlock()
	if ok {
		return b.v, b.err
	}
	k, err := decodeTrust(trustJSON)
	if err == nil {
		b.v, err = s.build(k)
	}
	b.err = err
	s.mu.Lock()
	if len(s.verifiers) >= maxVerifiers {
		for h := range s.verifiers {
			delete(s.verifiers, h)
			break
		}
	}
	s.verifiers[sum] = b
	s.mu.Unlock()
	return b.v, b.err
}

func (s *server) answer(req *request) *reply {
	rep := &reply{ID: req.ID}
	v, err := s.verifier(req.Trust)
	if err != nil {
		rep.Refusal, rep.Class = cut("the witness's trust cannot be loaded: "+err.Error()), classTrust
		return rep
	}
	if req.Op == opVerify {
		if err := v.Verify(req.Digest, req.Sig); err != nil {
			rep.Refusal, rep.Class = cut(err.Error()), classOf(err)
			if rep.Refusal == "" {
				rep.Refusal = "refused"
			}
			return rep
		}
	} else if req.Op != opUntil {
		rep.Refusal = cut(fmt.Sprintf("unknown operation %q", req.Op))
		return rep
	}
	if x, ok := v.(verify.CertExpiry); ok {
		if t := x.ValidUntil(req.Sig); !t.IsZero() {
			rep.Until = t.UnixNano()
		}
	}
	return rep
}

func (s *server) reply(rep *reply) {
	b, err := json.Marshal(rep)
	if err != nil {
		return // a reply of strings and numbers always encodes
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// A failed write means the daemon is gone: stdin ends next.
	_ = writeFrame(s.w, b)
}

// cut bounds a reason, so that a reply stays within maxReply.
func cut(s string) string {
	if len(s) > maxReason {
		return s[:maxReason] + "..."
	}
	return s
}
