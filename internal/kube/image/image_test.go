package image

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestBuildRunsInImage packs a static program, reads the tar back as an OCI
// image layout with go-containerregistry, checks the config, and runs the
// binary taken out of the image's flattened filesystem.
func TestBuildRunsInImage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from the image\") }\n"), 0o644)
	bin := filepath.Join(dir, "prog")
	build := exec.Command("go", "build", "-o", bin, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "spindle.oci.tar")
	digest, err := Build(Options{Binary: bin, Tag: "spindle:test", Version: "test"}, out)
	if err != nil {
		t.Fatal(err)
	}
	// Unpack the archive as containerd's import would read it.
	lay := filepath.Join(dir, "layout")
	if err := untar(out, lay); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 || m.Manifests[0].Annotations[RefAnnotation] != "spindle:test" || m.Manifests[0].Digest != digest {
		t.Fatalf("index %+v, %v; want one image %s tagged spindle:test", m, err, digest)
	}
	img, err := p.Image(digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != Entrypoint || cfg.Config.User != "65532:65532" {
		t.Errorf("config %+v", cfg.Config)
	}
	if mt, _ := img.MediaType(); !strings.Contains(string(mt), "oci") {
		t.Errorf("manifest media type %s, want OCI", mt)
	}
	fs := filepath.Join(dir, "rootfs")
	if err := untarReader(mutate.Extract(img), fs); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"tmp", "var/lib/spindle/models"} {
		if st, err := os.Stat(filepath.Join(fs, d)); err != nil || !st.IsDir() {
			t.Errorf("%s in the image: %v", d, err)
		}
	}
	got, err := exec.Command(filepath.Join(fs, Entrypoint)).Output()
	if err != nil || strings.TrimSpace(string(got)) != "hello from the image" {
		t.Fatalf("running the image's binary: %q, %v", got, err)
	}
	// The same binary builds the same image.
	again, err := Build(Options{Binary: bin, Tag: "spindle:test", Version: "test"}, filepath.Join(dir, "again.tar"))
	if err != nil || again != digest {
		t.Errorf("rebuild: %s, %v; want %s", again, err, digest)
	}
}

func TestBuildRefusesDynamicBinary(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(Options{Binary: sh, Tag: "x"}, filepath.Join(t.TempDir(), "x.tar")); !errors.Is(err, ErrNotStatic) {
		t.Errorf("Build(%s) = %v, want ErrNotStatic", sh, err)
	}
}

func untar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return untarReader(f, dir)
}

func untarReader(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		path := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode))
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			f.Close()
		}
	}
}
