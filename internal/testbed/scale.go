package testbed

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/pkg/sign"
)

// The node-scale benchmark (integration/scale) needs thousands of small
// distinct images in containerd, signed in the loopback registry, with the
// same digests in both. They share one busybox layer and differ by a label in
// their config, so that building, pushing and importing 10,000 of them takes
// seconds per thousand, not minutes.

// ManyImages are n images sharing one layer.
type ManyImages struct {
	Refs    []string // registry/repo:tag
	Digests []string // manifest digests
	Configs []string // config digests: the CRI also names each image's record by it
	images  []v1.Image
	layer   v1.Layer
}

// BuildManyImages builds n images host/repo:<tagPrefix><i> from busybox,
// distinct by the label nri-csig.bench/id.
func BuildManyImages(busybox, host, repo, tagPrefix string, n int) (*ManyImages, error) {
	base, err := BusyboxImage(busybox, "scale")
	if err != nil {
		return nil, err
	}
	layers, err := base.Layers()
	if err != nil {
		return nil, err
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	m := &ManyImages{layer: layers[0]}
	for i := range n {
		c := cf.DeepCopy()
		c.Config.Labels = map[string]string{"nri-csig.bench/id": fmt.Sprintf("%s%d", tagPrefix, i)}
		img, err := mutate.ConfigFile(base, c)
		if err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		m.images = append(m.images, img)
		m.Refs = append(m.Refs, fmt.Sprintf("%s/%s:%s%d", host, repo, tagPrefix, i))
		m.Digests = append(m.Digests, d.String())
		cfg, err := img.ConfigName()
		if err != nil {
			return nil, err
		}
		m.Configs = append(m.Configs, cfg.String())
	}
	return m, nil
}

// DigestRef is image i by digest.
func (m *ManyImages) DigestRef(i int) string {
	return m.Refs[i][:strings.LastIndex(m.Refs[i], ":")] + "@" + m.Digests[i]
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// sharedTransport keeps connections to the loopback registry open across
// the thousands of pushes.
var sharedTransport = &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}

// PushMany pushes every image to its reference (plain HTTP).
func (m *ManyImages) PushMany(ctx context.Context, workers int) error {
	return parallel(len(m.images), workers, func(i int) error {
		ref, err := name.ParseReference(m.Refs[i], name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, m.images[i], remote.WithContext(ctx), remote.WithTransport(sharedTransport)); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
		return nil
	})
}

// SignMany signs every image with s in the cosign legacy format (the .sig
// tag next to it), as "nri-csig sign" does.
func (m *ManyImages) SignMany(ctx context.Context, s sign.Signer, workers int) error {
	return parallel(len(m.images), workers, func(i int) error {
		d, err := name.NewDigest(m.DigestRef(i), name.Insecure)
		if err != nil {
			return err
		}
		sig, err := sign.Digest(ctx, s, d, nil)
		if err != nil {
			return err
		}
		return sign.Attach(ctx, sig, remote.WithTransport(sharedTransport))
	})
}

// WriteOCIArchive writes images [from, to) as one OCI archive whose index
// names each by its full reference, for "ctr images import" (digests are
// kept: the blobs are the pushed bytes).
func (m *ManyImages) WriteOCIArchive(path string, from, to int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(w)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	blob := func(d v1.Hash, b []byte) error { return add("blobs/"+d.Algorithm+"/"+d.Hex, b) }
	err = func() error {
		if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return err
		}
		rc, err := m.layer.Compressed()
		if err != nil {
			return err
		}
		layerBytes, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		ld, err := m.layer.Digest()
		if err != nil {
			return err
		}
		if err := blob(ld, layerBytes); err != nil {
			return err
		}
		var index v1.IndexManifest
		index.SchemaVersion = 2
		index.MediaType = "application/vnd.oci.image.index.v1+json"
		for i := from; i < to; i++ {
			img := m.images[i]
			cfg, err := img.RawConfigFile()
			if err != nil {
				return err
			}
			cd, err := img.ConfigName()
			if err != nil {
				return err
			}
			man, err := img.RawManifest()
			if err != nil {
				return err
			}
			md, err := img.Digest()
			if err != nil {
				return err
			}
			mt, err := img.MediaType()
			if err != nil {
				return err
			}
			if err := blob(cd, cfg); err != nil {
				return err
			}
			if err := blob(md, man); err != nil {
				return err
			}
			index.Manifests = append(index.Manifests, v1.Descriptor{
				MediaType: mt, Size: int64(len(man)), Digest: md,
				Annotations: map[string]string{
					"io.containerd.image.name":          m.Refs[i],
					"org.opencontainers.image.ref.name": m.Refs[i][strings.LastIndex(m.Refs[i], ":")+1:],
				},
			})
		}
		ib, err := json.Marshal(index)
		if err != nil {
			return err
		}
		if err := add("index.json", ib); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return w.Flush()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ImportArchive imports an OCI archive into the k8s.io namespace, unpacked
// for the overlayfs snapshotter as a pull would, or not: images that share
// their layers with one already unpacked need no unpacking of their own to
// run (the snapshot is found by the layers' chain ID), and skipping it makes
// importing thousands several times faster.
func (c *Containerd) ImportArchive(path string, unpack bool) error {
	args := []string{"images", "import", "--snapshotter", "overlayfs"}
	if !unpack {
		args = append(args, "--no-unpack")
	}
	_, err := c.Ctr(append(args, path)...)
	return err
}

// RemoveImages deletes image records by reference from the k8s.io
// namespace, a few hundred per ctr call.
func (c *Containerd) RemoveImages(refs []string) error {
	for len(refs) > 0 {
		n := min(len(refs), 500)
		if _, err := c.Ctr(append([]string{"images", "rm"}, refs[:n]...)...); err != nil {
			return err
		}
		refs = refs[n:]
	}
	return nil
}

// Memory is a process's resident memory now (VmRSS) and at its peak
// (VmHWM); RSS is Anon (heap, stacks: what the process allocated) plus File
// (pages of its binary and the files it maps).
type Memory struct{ RSS, HWM, Anon, File int64 }

// MiB formats bytes in MiB.
func MiB(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// Memory reads the daemon's VmRSS and VmHWM from /proc/<pid>/status.
func (d *Daemon) Memory() (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb * 1024
		case "VmHWM:":
			m.HWM = kb * 1024
		case "RssAnon:":
			m.Anon = kb * 1024
		case "RssFile:":
			m.File = kb * 1024
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", d.cmd.Process.Pid)
	}
	return m, nil
}

// Metric reads one unlabelled series from the daemon's /metrics.
func (d *Daemon) Metric(series string) (float64, error) {
	base, err := d.MetricsURL()
	if err != nil {
		return 0, err
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(body, []byte("\n")) {
		if f := strings.Fields(string(line)); len(f) == 2 && f[0] == series {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("the daemon does not export %s", series)
}

// LogTime returns the time of the first log line whose message is msg.
func (d *Daemon) LogTime(msg string) (time.Time, error) {
	for _, line := range strings.Split(d.Log(), "\n") {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			return rec.Time, nil
		}
	}
	return time.Time{}, fmt.Errorf("the daemon has not logged %q", msg)
}

// HeapProfile writes the daemon's heap profile (after a GC) to path; the
// daemon must run with --debug-pprof (LaunchDaemon's extra arguments).
func (d *Daemon) HeapProfile(path string) error {
	base, err := d.MetricsURL()
	if err != nil {
		return err
	}
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(base + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s (is the daemon running with --debug-pprof?)", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	return os.WriteFile(path, body, 0o644)
}
