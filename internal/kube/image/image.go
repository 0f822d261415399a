// Package image builds Spindle's container image without a container
// engine: a static spindle binary in one layer on an empty base, written as
// an OCI image layout in a tar file (`spindle kube image`), which containerd
// imports (`ctr -n k8s.io images import`) and registry tools push (`crane
// push`, `skopeo copy oci-archive:`).
package image

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrNotStatic is returned for a binary that needs a dynamic loader, which
// the empty base image does not have.
var ErrNotStatic = errors.New("not a static binary (build it with CGO_ENABLED=0)")

// Entrypoint is where the binary lives in the image.
const Entrypoint = "/spindle"

// RefAnnotation names an image in an OCI layout's index.
const RefAnnotation = "org.opencontainers.image.ref.name"

// Options describe the image.
type Options struct {
	// Binary is the static spindle binary to pack.
	Binary string
	// Tag names the image in the layout ("spindle:dev").
	Tag string
	// Version goes into the image's labels.
	Version string
}

// Build writes the image as an OCI image layout in the tar file out and
// returns the image's digest.
func Build(o Options, out string) (v1.Hash, error) {
	if err := checkStatic(o.Binary); err != nil {
		return v1.Hash{}, err
	}
	work, err := os.MkdirTemp(filepath.Dir(out), ".spindle-image-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(work)
	layerTar := filepath.Join(work, "layer.tar")
	if err := writeLayer(o.Binary, layerTar); err != nil {
		return v1.Hash{}, err
	}
	layer, err := tarball.LayerFromFile(layerTar, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return v1.Hash{}, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return v1.Hash{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()} // reproducible
	cfg.Config.Entrypoint = []string{Entrypoint}
	cfg.Config.User = "65532:65532"
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/", "SPINDLE_HOME=/tmp/spindle"}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "spindle",
		"org.opencontainers.image.version": o.Version,
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return v1.Hash{}, err
	}
	dir := filepath.Join(work, "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{RefAnnotation: o.Tag})); err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	return digest, tarDir(dir, out)
}

func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s: %w", path, ErrNotStatic)
		}
	}
	return nil
}

// writeLayer writes the layer's files: the binary, and the folders the
// platform writes to or mounts (the node's model cache, /tmp).
func writeLayer(binary, out string) error {
	bin, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer bin.Close()
	st, err := bin.Stat()
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	epoch := time.Unix(0, 0)
	for _, d := range []string{"tmp/", "var/", "var/lib/", "var/lib/spindle/", "var/lib/spindle/models/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: epoch}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: Entrypoint[1:], Mode: 0o755, Size: st.Size(), ModTime: epoch}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, bin); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// tarDir writes the files under dir into the tar file out, paths relative
// to dir.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			h.Name += "/"
		}
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
