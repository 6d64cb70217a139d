package credprovider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
	"unicode"
)

// Bounds of one plugin run.
const (
	// ExecTimeout bounds one plugin run, from start to exit (kubelet: 1 minute).
	ExecTimeout = 10 * time.Second // the credential chain bounds a source at 10 s (registry.CredentialTimeout)
	// MaxResponseSize bounds what is read of a plugin's stdout: an answer
	// is a few credentials.
	MaxResponseSize = 1 << 20
	// maxStderr is how much of a plugin's stderr an error quotes.
	maxStderr = 512
)

// ErrPlugin marks an error of a plugin run: it did not start, exited
// non-zero, ran past ExecTimeout, or answered something that is not a
// valid CredentialProviderResponse.
var ErrPlugin = errors.New("credential provider plugin failed")

// plugin is one configured exec plugin.
type plugin struct {
	name string
	bin  string
	args []string
	env  []string // NAME=value from the config, after the daemon's own
}

func newPlugin(binDir string, p CredentialProvider) (*plugin, error) {
	// As kubelet, the binary must be there when the config is loaded.
	bin, err := exec.LookPath(binDir + string(os.PathSeparator) + p.Name)
	if err != nil {
		return nil, fmt.Errorf("credential provider %s: no executable %s%c%s: install the plugin kubelet uses or fix registries.credentialProviders.binDir: %w",
			p.Name, binDir, os.PathSeparator, p.Name, err)
	}
	pl := &plugin{name: p.Name, bin: bin, args: p.Args}
	for _, e := range p.Env {
		pl.env = append(pl.env, e.Name+"="+e.Value)
	}
	return pl, nil
}

// response is what a plugin run yields, decoded and checked.
type response struct {
	keyType  PluginCacheKeyType
	duration *time.Duration // nil: the provider's default
	auth     keyring
}

// run executes the plugin for image with the exec protocol and decodes
// its answer. Errors wrap ErrPlugin and never quote stdout (it may hold
// credentials); they quote at most maxStderr bytes of stderr.
func (p *plugin) run(ctx context.Context, image string, timeout time.Duration) (*response, error) {
	req, err := json.Marshal(CredentialProviderRequest{
		TypeMeta: TypeMeta{APIVersion: PluginAPIVersion, Kind: "CredentialProviderRequest"},
		Image:    image,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: encoding the request: %v", ErrPlugin, p.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...) // exec keeps the last of duplicates: the config's
	cmd.Stdin = bytes.NewReader(req)
	stdout := &capped{max: MaxResponseSize}
	stderr := &capped{max: maxStderr, quiet: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	ownGroup(cmd)
	// A plugin that leaves a child holding its pipes open must not hold us.
	cmd.WaitDelay = time.Second
	start := time.Now()
	err = cmd.Run()
	switch {
	case stdout.over:
		return nil, fmt.Errorf("%w: %s for %s: its answer is larger than %d bytes", ErrPlugin, p.name, image, MaxResponseSize)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: %s for %s: no answer after %s (killed): %w%s", ErrPlugin, p.name, image, time.Since(start).Round(time.Millisecond), ctx.Err(), stderr.quote())
	case err != nil:
		return nil, fmt.Errorf("%w: %s for %s: %v%s", ErrPlugin, p.name, image, err, stderr.quote())
	}
	return decode(p.name, stdout.buf.Bytes())
}

// decode checks a plugin's answer as kubelet does: the apiVersion asked
// for, kind CredentialProviderResponse, no unknown field, a known
// cacheKeyType. The answer's content is never quoted.
func decode(name string, data []byte) (*response, error) {
	var out CredentialProviderResponse
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("%w: %s: its answer on stdout is not a CredentialProviderResponse in JSON (content not shown: it may hold credentials)", ErrPlugin, name)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: %s: its answer on stdout has data after the JSON document", ErrPlugin, name)
	}
	if out.APIVersion != PluginAPIVersion || out.Kind != "CredentialProviderResponse" {
		return nil, fmt.Errorf("%w: %s: answered apiVersion %q kind %q; want %s CredentialProviderResponse", ErrPlugin, name, out.APIVersion, out.Kind, PluginAPIVersion)
	}
	switch out.CacheKeyType {
	case ImagePluginCacheKeyType, RegistryPluginCacheKeyType, GlobalPluginCacheKeyType:
	default:
		return nil, fmt.Errorf("%w: %s: cacheKeyType %q; want Image, Registry or Global", ErrPlugin, name, out.CacheKeyType)
	}
	r := &response{keyType: out.CacheKeyType}
	if out.CacheDuration != nil {
		d := out.CacheDuration.Duration
		if d < 0 {
			return nil, fmt.Errorf("%w: %s: negative cacheDuration %s", ErrPlugin, name, d)
		}
		r.duration = &d
	}
	auth := make(map[string]Credential, len(out.Auth))
	for k, a := range out.Auth {
		auth[k] = Credential(a)
	}
	r.auth = newKeyring(auth)
	return r, nil
}

// capped is a buffer that takes at most max bytes. Past that, a capped
// stdout fails the write (the plugin then sees a closed pipe) and records
// it; a quiet one (stderr) drops the rest. (The buffer is a field, not
// embedded: its ReadFrom would let io.Copy bypass Write.)
type capped struct {
	buf   bytes.Buffer
	max   int
	over  bool
	quiet bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); len(p) > room {
		c.buf.Write(p[:max(room, 0)])
		if c.quiet {
			return len(p), nil
		}
		c.over = true
		return 0, errors.New("answer too large")
	}
	return c.buf.Write(p)
}

// quote returns stderr for an error message: printable, one line, bounded.
func (c *capped) quote() string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.TrimSpace(c.buf.String()))
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}
