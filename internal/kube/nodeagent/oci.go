package nodeagent

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// EnsureOCI makes the model with the digest available in the cache, pulling
// it from an OCI artifact if it is not there yet: the artifact's layer whose
// digest is the model's sha256 (as `oras push REF model.onnx` stores it,
// uncompressed), or its only layer. The bytes are verified as for a URL.
func (c *Cache) EnsureOCI(ctx context.Context, ref, digest string, opts ...remote.Option) (string, error) {
	return c.EnsureFrom(ctx, digest, ref, func(ctx context.Context) (io.ReadCloser, error) {
		return openOCI(ctx, ref, digest, opts...)
	})
}

func openOCI(ctx context.Context, ref, digest string, opts ...remote.Option) (io.ReadCloser, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("oci: %q: %w", ref, err)
	}
	img, err := remote.Image(r, append([]remote.Option{remote.WithContext(ctx)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	want := v1.Hash{Algorithm: "sha256", Hex: digest}
	for _, l := range layers {
		if d, err := l.Digest(); err == nil && d == want {
			return l.Compressed() // the blob's own bytes
		}
	}
	if len(layers) == 1 {
		return layers[0].Compressed()
	}
	return nil, fmt.Errorf("pull %s: %d layers and none with digest sha256:%s", ref, len(layers), digest)
}
