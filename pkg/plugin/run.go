package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// Connection says how to reach NRI.
type Connection struct {
	// Name and Index register the plugin ("nri-csig", "50"); containerd's
	// default validator must list Name in required_plugins.
	Name  string
	Index string
	// Socket is NRI's socket for an external plugin.
	Socket string
}

// PreInstalled reports whether containerd launched this process as a
// pre-installed plugin: then the connection is an inherited socket and the
// name and index come from the environment.
func PreInstalled() bool { return os.Getenv(api.PluginSocketEnvVar) != "" }

// Run connects to NRI and serves until ctx ends. As an external plugin it
// reconnects with backoff when the connection drops (containerd restarted);
// a pre-installed plugin cannot (its socket was inherited), so Run returns and
// containerd relaunches it at its next start. Run also returns when the runtime
// is refused (ErrUnsupportedRuntime): retrying would not change the runtime.
func (p *Plugin) Run(ctx context.Context, c Connection) error {
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		err := p.serveOnce(ctx, c)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrUnsupportedRuntime):
			return err
		case PreInstalled():
			return fmt.Errorf("connection to containerd closed (pre-installed plugin: containerd relaunches it when it restarts): %v", err)
		}
		if err == nil {
			backoff.reset()
		}
		wait := backoff.next()
		p.log.Warn("NRI connection lost; reconnecting", "socket", c.Socket, "error", errString(err), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// serveOnce registers with NRI and serves until the connection closes.
func (p *Plugin) serveOnce(ctx context.Context, c Connection) error {
	opts := []stub.Option{stub.WithOnClose(func() {})}
	if !PreInstalled() {
		opts = append(opts, stub.WithPluginName(c.Name), stub.WithPluginIdx(c.Index), stub.WithSocketPath(c.Socket))
	}
	s, err := stub.New(p, opts...)
	if err != nil {
		return fmt.Errorf("creating NRI stub: %w", err)
	}
	p.setStub(s)
	defer p.setStub(nil)

	started := time.Now()
	err = s.Run(ctx)
	p.ready.Store(false)
	if errors.Is(p.configureErr(), ErrUnsupportedRuntime) {
		return p.configureErr()
	}
	if time.Since(started) > 10*time.Second {
		return nil // it served for a while: reconnect quickly
	}
	return err
}

func (p *Plugin) setStub(s stub.Stub) {
	p.stubMu.Lock()
	defer p.stubMu.Unlock()
	p.stub = s
}

func (p *Plugin) currentStub() stub.Stub {
	p.stubMu.Lock()
	defer p.stubMu.Unlock()
	return p.stub
}

func errString(err error) string {
	if err == nil {
		return "closed by the runtime"
	}
	return err.Error()
}

type backoff struct{ min, max, cur time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }
