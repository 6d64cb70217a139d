package testbed

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// busyboxApplets are linked to /bin/busybox in the test images.
var busyboxApplets = []string{"sh", "sleep", "echo", "cat", "ls", "id", "hostname", "true", "env", "ps"}

// file is one entry of an image layer.
type file struct {
	data []byte
	link string // symlink target
	mode int64
}

// BusyboxImage builds a one-layer image holding Debian's static busybox. The
// marker, written to /marker, makes images with different digests from the
// same binary. Layers have fixed timestamps: same inputs, same digest.
func BusyboxImage(busybox, marker string) (v1.Image, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("reading busybox (apt-get install busybox-static): %w", err)
	}
	files := map[string]file{"bin/busybox": {data: bb, mode: 0o755}, "marker": {data: []byte(marker + "\n"), mode: 0o644}}
	for _, a := range busyboxApplets {
		files["bin/"+a] = file{link: "busybox"}
	}
	return imageOf(files, v1.Config{Cmd: []string{"/bin/sh"}})
}

// PlatformImage is BusyboxImage for another architecture (its config says
// so; the content is the same static binary, never run here).
func PlatformImage(busybox, marker, arch string) (v1.Image, error) {
	img, err := BusyboxImage(busybox, marker)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = arch
	return mutate.ConfigFile(img, cf)
}

// IndexOf builds a multi-platform index of linux images by architecture.
func IndexOf(byArch map[string]v1.Image) (v1.ImageIndex, error) {
	archs := make([]string, 0, len(byArch))
	for a := range byArch {
		archs = append(archs, a)
	}
	sort.Strings(archs)
	var adds []mutate.IndexAddendum
	for _, a := range archs {
		adds = append(adds, mutate.IndexAddendum{Add: byArch[a], Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: a}}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// PauseImage builds the sandbox image from the static pause binary.
func PauseImage(pause string) (v1.Image, error) {
	b, err := os.ReadFile(pause)
	if err != nil {
		return nil, err
	}
	return imageOf(map[string]file{"pause": {data: b, mode: 0o755}}, v1.Config{Entrypoint: []string{"/pause"}})
}

func imageOf(files map[string]file, cfg v1.Config) (v1.Image, error) {
	layerBytes, err := tarOf(files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Env = []string{"PATH=/bin"}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

func tarOf(files map[string]file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, n := range names {
		for i := range n {
			if n[i] == '/' && !dirs[n[:i]] {
				dirs[n[:i]] = true
				if err := tw.WriteHeader(&tar.Header{Name: n[:i] + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
					return nil, err
				}
			}
		}
		f := files[n]
		h := &tar.Header{Name: n, Mode: f.mode, ModTime: time.Unix(0, 0)}
		if f.link != "" {
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
