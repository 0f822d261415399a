package nodeagent

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestCachePullsOCIArtifact pushes a model as an OCI artifact (one
// uncompressed layer, as oras stores a file) to a registry served over real
// HTTP (go-containerregistry's registry implementation), and pulls it into
// the cache by reference and sha256.
func TestCachePullsOCIArtifact(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	model := bytes.Repeat([]byte{7, 1, 3}, 5000)
	layer := static.NewLayer(model, types.MediaType("application/vnd.onnx.model"))
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/models/bert:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Root: t.TempDir()}
	d := digestOf(model)
	p, err := c.EnsureOCI(context.Background(), host+"/models/bert:v1", d)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("pulled %d bytes, %v", len(got), err)
	}
	// A digest the artifact does not hold: nothing cached.
	other := digestOf([]byte("x"))
	if _, err := c.EnsureOCI(context.Background(), host+"/models/bert:v1", other); !errors.Is(err, ErrDigest) {
		t.Errorf("wrong digest: %v", err)
	}
	if _, err := c.EnsureOCI(context.Background(), host+"/models/nothing:v1", other); err == nil || !strings.Contains(err.Error(), "models/nothing") {
		t.Errorf("missing artifact: %v", err)
	}
	if c.Has(other) {
		t.Error("a refused pull left a file")
	}
}
