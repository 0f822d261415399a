package task

import (
	"context"
	"errors"
	"testing"
)

// The fuzz targets check the property every request parser must have: any
// input gives an answer or a clear error, never a panic.

func FuzzTextRequest(f *testing.F) {
	for _, s := range []string{`{"text": "hello"}`, `{"texts": ["a", "b"], "text_pairs": ["c", "d"]}`, `{"text": ""}`, `[`, `{"text": "a", "text_pair": "b"}`, `{"texts": []}`} {
		f.Add(s, "application/json")
	}
	tk, m := classifierTask(f, Config{MaxBatch: 4, MaxLength: 24})
	f.Fuzz(func(t *testing.T, body, ct string) {
		_, err := tk.Handle(context.Background(), Request{ContentType: ct, Body: []byte(body)}, m.Run)
		if err != nil && !IsInputError(err) {
			t.Fatalf("%q: error %v is not an InputError", body, err)
		}
	})
}

func FuzzImageRequest(f *testing.F) {
	f.Add(encodePNG(f, testImage(9, 5)), "image/png")
	f.Add(encodeJPEG(f, testImage(5, 9)), "image/jpeg")
	f.Add(pngHeader(1<<20, 1<<20), "image/png")
	f.Add([]byte("--X\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc\r\n--X--\r\n"), "multipart/form-data; boundary=X")
	tk, m := imageTask(f, Config{})
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		_, err := tk.Handle(context.Background(), Request{ContentType: ct, Body: body}, m.Run)
		if err != nil && !IsInputError(err) {
			t.Fatalf("error %v is not an InputError", err)
		}
	})
}

func FuzzConfig(f *testing.F) {
	for _, s := range []string{`{"max_length": 64}`, `{"top_k": -1}`, `{"image_size": [1, 2]}`, `{"mean": [1,2,3]}`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := ParseConfig([]byte(raw))
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("%q: error %v does not wrap ErrConfig", raw, err)
			}
			return
		}
		for _, k := range Kinds() {
			if err := c.check(k); err != nil && !errors.Is(err, ErrConfig) {
				t.Fatalf("%q: check(%s): %v does not wrap ErrConfig", raw, k, err)
			}
		}
	})
}
