package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/tensor"
)

// Error is a non-2xx answer from the gateway.
type Error struct {
	Status  int
	Message string
}

// Error returns the gateway's message and the status code.
func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// IsClientError reports whether err is a 4xx answer: the request was at fault.
func IsClientError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500
}

// Client is a gateway client. The zero value is unusable; call New.
type Client struct {
	base *url.URL
	http *http.Client
	key  string
}

// Option configures a Client.
type Option func(*Client)

// WithKey sends key as "Authorization: Bearer KEY" on every request; an empty
// key sends none.
func WithKey(key string) Option { return func(c *Client) { c.key = key } }

// New returns a client for the gateway at base (e.g. http://127.0.0.1:8080).
func New(base string, opts ...Option) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway %q: must be an http(s) URL like http://127.0.0.1:8080", base)
	}
	c := &Client{base: u, http: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

func (c *Client) url(path string) string {
	return strings.TrimSuffix(c.base.String(), "/") + path
}

func (c *Client) do(req *http.Request, out any) error {
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("gateway %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e oip.ErrorResponse
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		if e.Error == "" { // an empty body: say at least what the status means
			e.Error = http.StatusText(resp.StatusCode)
		}
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if f, ok := out.(func(io.Reader) error); ok {
		return f(resp.Body)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Deploy uploads the model at modelPath (and the external data files it
// references) as function name, for raw inference.
func (c *Client) Deploy(ctx context.Context, name, modelPath string) (registry.Function, error) {
	return c.DeployWith(ctx, name, modelPath, DeployOptions{})
}

// DeployOptions are what a deploy carries beside its model. The zero value
// deploys for raw OIP v2 inference.
type DeployOptions struct {
	// Task is the task kind (package task); "" means raw inference only.
	Task string
	// Config is the task's JSON config; nil means the defaults.
	Config json.RawMessage
	// Files are extra files (tokenizer.json, labels.txt), uploaded under their
	// base names beside the model.
	Files []string
	// Batch is the dynamic batching policy ("auto", "max=N[,delay=D]");
	// "" is off.
	Batch string
}

// upload is one file part: its path in the upload and on disk.
type upload struct{ rel, path string }

// DeployWith uploads the model at modelPath ("" for a task without a model,
// cpu-burn), its external data and opt's extra files as function name.
func (c *Client) DeployWith(ctx context.Context, name, modelPath string, opt DeployOptions) (registry.Function, error) {
	var f registry.Function
	var files []upload
	if modelPath != "" {
		// Load (mapped, nothing copied) to validate locally and find external files.
		m, err := onnx.Load(modelPath, onnx.Mmap)
		if err != nil {
			return f, err
		}
		ext := append([]string(nil), m.ExternalFiles...)
		m.Close()
		dir := filepath.Dir(modelPath)
		for _, rel := range append([]string{filepath.Base(modelPath)}, ext...) {
			files = append(files, upload{rel: filepath.ToSlash(rel), path: filepath.Join(dir, rel)})
		}
	}
	for _, p := range opt.Files {
		st, err := os.Stat(p)
		if err != nil {
			return f, err
		}
		if !st.Mode().IsRegular() {
			return f, fmt.Errorf("file %s: not a regular file", p)
		}
		rel := filepath.Base(p)
		for _, u := range files {
			if u.rel == rel {
				return f, fmt.Errorf("file %s: %q is uploaded already (as %s); files go up under their base names", p, rel, u.path)
			}
		}
		files = append(files, upload{rel: rel, path: p})
	}

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeUpload(mw, name, modelPath != "", opt, files))
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/admin/v1/functions"), pr)
	if err != nil {
		return f, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	err = c.do(req, &f)
	pr.Close()
	return f, err
}

// writeUpload writes a deploy body; with a model, files[0] is the model.
func writeUpload(mw *multipart.Writer, name string, model bool, opt DeployOptions, files []upload) error {
	fields := [][2]string{{"name", name}}
	if model {
		fields = append(fields, [2]string{"model", files[0].rel})
	}
	if opt.Task != "" {
		fields = append(fields, [2]string{"task", opt.Task})
	}
	if len(opt.Config) > 0 {
		fields = append(fields, [2]string{"config", string(opt.Config)})
	}
	if opt.Batch != "" {
		fields = append(fields, [2]string{"batch", opt.Batch})
	}
	for _, kv := range fields {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return err
		}
	}
	for _, u := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, u.rel))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		f, err := os.Open(u.path)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return mw.Close()
}

// TaskInvoke sends body (of the given Content-Type) to function name's task
// endpoint, POST /v1/tasks/{name}, and returns the JSON answer.
func (c *Client) TaskInvoke(ctx context.Context, name, contentType string, body io.Reader) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v1/tasks/"+url.PathEscape(name)), body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	var out json.RawMessage
	return out, c.do(req, &out)
}

// List returns the deployed functions.
func (c *Client) List(ctx context.Context) ([]registry.Function, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/admin/v1/functions"), nil)
	if err != nil {
		return nil, err
	}
	var out []registry.Function
	return out, c.do(req, &out)
}

// Describe returns a function and its live state.
func (c *Client) Describe(ctx context.Context, name string) (api.FunctionInfo, error) {
	var out api.FunctionInfo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/admin/v1/functions/"+url.PathEscape(name)), nil)
	if err != nil {
		return out, err
	}
	return out, c.do(req, &out)
}

// Remove deletes a function and stops its instances.
func (c *Client) Remove(ctx context.Context, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.url("/admin/v1/functions/"+url.PathEscape(name)), nil)
	if err != nil {
		return err
	}
	return c.do(req, nil)
}

// Infer runs function name on inputs and returns its outputs in response order.
func (c *Client) Infer(ctx context.Context, name string, inputs map[string]*tensor.Tensor) ([]string, map[string]*tensor.Tensor, error) {
	req := oip.InferRequest{}
	for n, t := range inputs {
		req.Inputs = append(req.Inputs, oip.InputFromTensor(n, t))
	}
	var body bytes.Buffer
	if err := oip.EncodeRequest(&body, &req); err != nil {
		return nil, nil, fmt.Errorf("encode request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v2/models/"+url.PathEscape(name)+"/infer"), &body)
	if err != nil {
		return nil, nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	var names []string
	var outs map[string]*tensor.Tensor
	err = c.do(hreq, func(r io.Reader) error {
		resp, ts, err := oip.DecodeResponse(r)
		if err != nil {
			return err
		}
		for _, o := range resp.Outputs {
			names = append(names, o.Name)
		}
		outs = ts
		return nil
	})
	return names, outs, err
}

// Logs returns up to the last n bytes of function name's instance log.
func (c *Client) Logs(ctx context.Context, name string, n int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(fmt.Sprintf("/admin/v1/functions/%s/logs?bytes=%d", url.PathEscape(name), n)), nil)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = c.do(req, func(r io.Reader) error {
		var err error
		out, err = io.ReadAll(r)
		return err
	})
	return out, err
}

// Scale changes function name's per-instance CPU allotment and memory limit,
// live; a nil field keeps its value.
func (c *Client) Scale(ctx context.Context, name string, req api.ScaleRequest) (api.ScaleResult, error) {
	var out api.ScaleResult
	body, err := json.Marshal(req)
	if err != nil {
		return out, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/admin/v1/functions/"+url.PathEscape(name)+"/scale"), bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	return out, c.do(hreq, &out)
}
