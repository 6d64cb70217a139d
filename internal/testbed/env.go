package testbed

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// PluginName is the name nri-csig registers with NRI in the testbed.
const PluginName = "nri-csig"

// Image is a test image pushed to the registry and pulled into containerd.
type Image struct {
	Ref          string // registry/repo:tag
	Digest       string // manifest digest
	ConfigDigest string // image ID
}

// DigestRef is the image by digest: registry/repo@sha256:...
func (i Image) DigestRef() string {
	repo := i.Ref[:strings.LastIndex(i.Ref, ":")]
	return repo + "@" + i.Digest
}

// Env is the whole testbed: tools, registry, containerd and images.
type Env struct {
	Tools      *Tools
	Registry   *Registry
	Containerd *Containerd
	Pause      Image
	Trusted    Image // busybox, to be allowed or signed
	Untrusted  Image // busybox with another marker, so another digest
	Timings    map[string]time.Duration
}

// Setup builds and starts everything. containerd requires the nri-csig
// plugin (default validator) unless requirePlugin is false.
func Setup(requirePlugin bool) (_ *Env, err error) {
	e := &Env{Timings: map[string]time.Duration{}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	start := time.Now()
	if e.Tools, err = EnsureTools(); err != nil {
		return nil, err
	}
	e.Timings["tools"] = time.Since(start)

	start = time.Now()
	if e.Registry, err = StartRegistry(); err != nil {
		return nil, err
	}
	if err := e.pushImages(); err != nil {
		return nil, err
	}
	e.Timings["images"] = time.Since(start)

	start = time.Now()
	opts := ContainerdOptions{RegistryHost: e.Registry.Host, SandboxImage: e.Pause.Ref}
	if requirePlugin {
		opts.RequiredPlugins = []string{PluginName}
	}
	if e.Containerd, err = StartContainerd(e.Tools, opts); err != nil {
		return nil, err
	}
	e.Timings["containerd"] = time.Since(start)

	start = time.Now()
	for _, img := range []*Image{&e.Pause, &e.Trusted, &e.Untrusted} {
		if img.ConfigDigest, err = e.Containerd.Pull(img.Ref); err != nil {
			return nil, err
		}
	}
	e.Timings["pull"] = time.Since(start)
	return e, nil
}

func (e *Env) pushImages() error {
	pause, err := PauseImage(e.Tools.Pause)
	if err != nil {
		return err
	}
	trusted, err := BusyboxImage(e.Tools.Busybox, "trusted")
	if err != nil {
		return err
	}
	untrusted, err := BusyboxImage(e.Tools.Busybox, "untrusted")
	if err != nil {
		return err
	}
	var errs []error
	if e.Pause.Digest, err = e.Registry.Push("csig/pause:1", pause); err != nil {
		errs = append(errs, err)
	}
	e.Pause.Ref = e.Registry.Ref("csig/pause:1")
	if e.Trusted.Digest, err = e.Registry.Push("csig/busybox:trusted", trusted); err != nil {
		errs = append(errs, err)
	}
	e.Trusted.Ref = e.Registry.Ref("csig/busybox:trusted")
	if e.Untrusted.Digest, err = e.Registry.Push("csig/busybox:untrusted", untrusted); err != nil {
		errs = append(errs, err)
	}
	e.Untrusted.Ref = e.Registry.Ref("csig/busybox:untrusted")
	return errors.Join(errs...)
}

// Close stops everything Setup started.
func (e *Env) Close() {
	if e.Containerd != nil {
		e.Containerd.Close()
	}
	if e.Registry != nil {
		e.Registry.Close()
	}
}

// Describe prints what the testbed runs, for logs.
func (e *Env) Describe() string {
	return fmt.Sprintf("containerd %s (socket %s), registry %s\n  trusted   %s %s (config %s)\n  untrusted %s %s (config %s)",
		e.Containerd.Dir, e.Containerd.Socket, e.Registry.Host,
		e.Trusted.Ref, e.Trusted.Digest, e.Trusted.ConfigDigest,
		e.Untrusted.Ref, e.Untrusted.Digest, e.Untrusted.ConfigDigest)
}
