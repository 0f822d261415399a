package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/oip/oipgrpc"
)

// The Open Inference Protocol over gRPC (KServe's
// inference.GRPCInferenceService). Each call becomes the REST request that
// means the same (inference as the binary tensor data extension lays it
// out) and runs through the gateway's HTTP handler in process, so that a
// gRPC client gets what a REST one does: the same keys (a bearer key in the
// "authorization" metadata), tenant limits, deadlines (the call's), queueing,
// scale from zero, retries and metrics.

// maxGRPCMessage bounds a gRPC message as the REST body limit does.
func (g *Gateway) maxGRPCMessage() int { return int(min(g.cfg.MaxBodyBytes, math.MaxInt32)) }

// NewGRPCServer returns a gRPC server serving the protocol over g.
func (g *Gateway) NewGRPCServer() *grpc.Server {
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(g.maxGRPCMessage()), grpc.MaxSendMsgSize(math.MaxInt32))
	oipgrpc.RegisterGRPCInferenceServiceServer(srv, &grpcService{g: g, h: g.Handler()})
	return srv
}

// ServeGRPC serves the gRPC API on ln until ctx ends, then stops gracefully.
// The listener must pass the same check as the REST one (open access only
// on loopback).
func (g *Gateway) ServeGRPC(ctx context.Context, ln net.Listener) error {
	if err := g.CheckListen(ln.Addr()); err != nil {
		return err
	}
	srv := g.NewGRPCServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		srv.GracefulStop()
		return nil
	}
}

type grpcService struct {
	oipgrpc.UnimplementedGRPCInferenceServiceServer
	g *Gateway
	h http.Handler
}

// recorded is the answer of an in-process REST call.
type recorded struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorded) Header() http.Header { return r.header }
func (r *recorded) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorded) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

// call runs method path with body through the REST handler, as the gRPC
// caller: its key, its address and its deadline.
func (s *grpcService) call(ctx context.Context, method, path string, header http.Header, body []byte) (*recorded, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://grpc"+path, bytes.NewReader(body))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if auth := md.Get("authorization"); len(auth) > 0 {
			req.Header.Set("Authorization", auth[0])
		}
	}
	if d, ok := ctx.Deadline(); ok {
		req.Header.Set(TimeoutHeader, strconv.FormatFloat(max(time.Until(d).Seconds(), 1e-3), 'f', -1, 64))
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		req.RemoteAddr = p.Addr.String()
	}
	rec := &recorded{header: http.Header{}}
	s.h.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	return rec, nil
}

// statusOf turns a REST error answer into the gRPC status that means the
// same, with the REST API's message.
func statusOf(rec *recorded) error {
	var e oip.ErrorResponse
	msg := rec.body.String()
	if json.Unmarshal(rec.body.Bytes(), &e) == nil && e.Error != "" {
		msg = e.Error
	}
	code := codes.Unknown
	switch rec.code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		code = codes.InvalidArgument
	case http.StatusUnauthorized:
		code = codes.Unauthenticated
	case http.StatusForbidden:
		code = codes.PermissionDenied
	case http.StatusNotFound:
		code = codes.NotFound
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		code = codes.DeadlineExceeded
	case http.StatusTooManyRequests:
		code = codes.ResourceExhausted
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		code = codes.Unavailable
	case 499:
		code = codes.Canceled
	case http.StatusInternalServerError:
		code = codes.Internal
	}
	return status.Error(code, msg)
}

// getJSON runs a GET and decodes a 200 answer into out.
func (s *grpcService) getJSON(ctx context.Context, path string, out any) error {
	rec, err := s.call(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	if rec.code != http.StatusOK {
		return statusOf(rec)
	}
	if out != nil {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return status.Errorf(codes.Internal, "decode %s: %v", path, err)
		}
	}
	return nil
}

// modelPath is the REST path of a model, versioned when version is given.
func modelPath(name, version string) (string, error) {
	if name == "" {
		return "", status.Error(codes.InvalidArgument, "name: required")
	}
	p := "/v2/models/" + url.PathEscape(name)
	if version != "" {
		p += "/versions/" + url.PathEscape(version)
	}
	return p, nil
}

func (s *grpcService) ServerLive(ctx context.Context, _ *oipgrpc.ServerLiveRequest) (*oipgrpc.ServerLiveResponse, error) {
	rec, err := s.call(ctx, http.MethodGet, "/v2/health/live", nil, nil)
	if err != nil {
		return nil, err
	}
	return &oipgrpc.ServerLiveResponse{Live: rec.code == http.StatusOK}, nil
}

func (s *grpcService) ServerReady(ctx context.Context, _ *oipgrpc.ServerReadyRequest) (*oipgrpc.ServerReadyResponse, error) {
	rec, err := s.call(ctx, http.MethodGet, "/v2/health/ready", nil, nil)
	if err != nil {
		return nil, err
	}
	return &oipgrpc.ServerReadyResponse{Ready: rec.code == http.StatusOK}, nil
}

func (s *grpcService) ModelReady(ctx context.Context, req *oipgrpc.ModelReadyRequest) (*oipgrpc.ModelReadyResponse, error) {
	p, err := modelPath(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	rec, err := s.call(ctx, http.MethodGet, p+"/ready", nil, nil)
	if err != nil {
		return nil, err
	}
	switch rec.code {
	case http.StatusOK:
		return &oipgrpc.ModelReadyResponse{Ready: true}, nil
	case http.StatusNotFound:
		return &oipgrpc.ModelReadyResponse{Ready: false}, nil
	}
	return nil, statusOf(rec)
}

func (s *grpcService) ServerMetadata(ctx context.Context, _ *oipgrpc.ServerMetadataRequest) (*oipgrpc.ServerMetadataResponse, error) {
	var md oip.ServerMetadataResponse
	if err := s.getJSON(ctx, "/v2", &md); err != nil {
		return nil, err
	}
	return &oipgrpc.ServerMetadataResponse{Name: md.Name, Version: md.Version, Extensions: md.Extensions}, nil
}

func (s *grpcService) ModelMetadata(ctx context.Context, req *oipgrpc.ModelMetadataRequest) (*oipgrpc.ModelMetadataResponse, error) {
	p, err := modelPath(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	var md oip.ModelMetadata
	if err := s.getJSON(ctx, p, &md); err != nil {
		return nil, err
	}
	conv := func(ts []oip.TensorMetadata) []*oipgrpc.ModelMetadataResponse_TensorMetadata {
		out := make([]*oipgrpc.ModelMetadataResponse_TensorMetadata, len(ts))
		for i, t := range ts {
			out[i] = &oipgrpc.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		}
		return out
	}
	return &oipgrpc.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform,
		Inputs: conv(md.Inputs), Outputs: conv(md.Outputs)}, nil
}

// ModelInfer sends the request as the binary tensor data extension's REST
// request (every input's data raw, from raw_input_contents or converted
// from its typed contents) and answers with every output in
// raw_output_contents, as the protocol's gRPC clients read them.
func (s *grpcService) ModelInfer(ctx context.Context, req *oipgrpc.ModelInferRequest) (*oipgrpc.ModelInferResponse, error) {
	p, err := modelPath(req.GetModelName(), req.GetModelVersion())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "model_name: required")
	}
	raws := req.GetRawInputContents()
	if len(raws) != 0 && len(raws) != len(req.GetInputs()) {
		return nil, status.Errorf(codes.InvalidArgument, "raw_input_contents: %d entries for %d inputs; give every input's or none", len(raws), len(req.GetInputs()))
	}
	head := oip.InferRequest{ID: req.GetId(), Parameters: restParams(req.GetParameters())}
	if head.Parameters == nil {
		head.Parameters = oip.Parameters{}
	}
	head.Parameters[oip.ParamBinaryOutput] = true
	var data [][]byte
	for i, in := range req.GetInputs() {
		raw := []byte(nil)
		if len(raws) > 0 {
			raw = raws[i]
		} else if raw, err = contentsRaw(in.GetDatatype(), in.GetContents()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "inputs[%d].contents: %v", i, err)
		}
		params := restParams(in.GetParameters())
		if params == nil {
			params = oip.Parameters{}
		}
		params[oip.ParamBinarySize] = len(raw)
		head.Inputs = append(head.Inputs, oip.RequestInput{Name: in.GetName(), Shape: in.GetShape(), Datatype: in.GetDatatype(), Parameters: params})
		data = append(data, raw)
	}
	for _, o := range req.GetOutputs() {
		params := restParams(o.GetParameters())
		if params == nil {
			params = oip.Parameters{}
		}
		params[oip.ParamBinary] = true
		head.Outputs = append(head.Outputs, oip.RequestOutput{Name: o.GetName(), Parameters: params})
	}
	header, err := json.Marshal(head)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	body := header
	for _, raw := range data {
		body = append(body, raw...)
	}
	h := http.Header{}
	h.Set(oip.HeaderLength, strconv.Itoa(len(header)))
	rec, err := s.call(ctx, http.MethodPost, p+"/infer", h, body)
	if err != nil {
		return nil, err
	}
	if rec.code != http.StatusOK {
		return nil, statusOf(rec)
	}
	return inferResponse(rec)
}

// inferResponse converts the REST answer (a JSON header and the outputs'
// raw data) into a ModelInferResponse.
func inferResponse(rec *recorded) (*oipgrpc.ModelInferResponse, error) {
	all := rec.body.Bytes()
	n, err := strconv.Atoi(rec.header.Get(oip.HeaderLength))
	if err != nil || n < 0 || n > len(all) {
		return nil, status.Errorf(codes.Internal, "instance answer: %s %q", oip.HeaderLength, rec.header.Get(oip.HeaderLength))
	}
	var head oip.InferResponse
	if err := json.Unmarshal(all[:n], &head); err != nil {
		return nil, status.Errorf(codes.Internal, "instance answer: %v", err)
	}
	out := &oipgrpc.ModelInferResponse{ModelName: head.ModelName, ModelVersion: head.ModelVersion, Id: head.ID}
	rest := all[n:]
	for i, o := range head.Outputs {
		size, ok := o.Parameters[oip.ParamBinarySize].(float64)
		if !ok || int(size) > len(rest) {
			return nil, status.Errorf(codes.Internal, "instance answer: outputs[%d] has no binary data", i)
		}
		out.Outputs = append(out.Outputs, &oipgrpc.ModelInferResponse_InferOutputTensor{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape})
		out.RawOutputContents = append(out.RawOutputContents, rest[:int(size)])
		rest = rest[int(size):]
	}
	return out, nil
}

// restParams converts gRPC parameters to the REST API's.
func restParams(ps map[string]*oipgrpc.InferParameter) oip.Parameters {
	if len(ps) == 0 {
		return nil
	}
	out := oip.Parameters{}
	for k, p := range ps {
		switch v := p.GetParameterChoice().(type) {
		case *oipgrpc.InferParameter_BoolParam:
			out[k] = v.BoolParam
		case *oipgrpc.InferParameter_Int64Param:
			out[k] = float64(v.Int64Param)
		case *oipgrpc.InferParameter_StringParam:
			out[k] = v.StringParam
		case *oipgrpc.InferParameter_DoubleParam:
			out[k] = v.DoubleParam
		case *oipgrpc.InferParameter_Uint64Param:
			out[k] = float64(v.Uint64Param)
		}
	}
	return out
}

// contentsRaw lays out an input's typed contents as raw binary data: the
// field the datatype names (int_contents for INT8 to INT32, uint_contents
// for UINT8 to UINT32, fp32_contents for FP32, ...).
func contentsRaw(datatype string, c *oipgrpc.InferTensorContents) ([]byte, error) {
	le := binary.LittleEndian
	var out []byte
	switch datatype {
	case "BOOL":
		for _, v := range c.GetBoolContents() {
			b := byte(0)
			if v {
				b = 1
			}
			out = append(out, b)
		}
	case "INT8", "INT16", "INT32":
		for _, v := range c.GetIntContents() {
			switch datatype {
			case "INT8":
				out = append(out, byte(int8(v)))
			case "INT16":
				out = le.AppendUint16(out, uint16(int16(v)))
			default:
				out = le.AppendUint32(out, uint32(v))
			}
		}
	case "INT64":
		for _, v := range c.GetInt64Contents() {
			out = le.AppendUint64(out, uint64(v))
		}
	case "UINT8", "UINT16", "UINT32":
		for _, v := range c.GetUintContents() {
			switch datatype {
			case "UINT8":
				out = append(out, byte(v))
			case "UINT16":
				out = le.AppendUint16(out, uint16(v))
			default:
				out = le.AppendUint32(out, v)
			}
		}
	case "UINT64":
		for _, v := range c.GetUint64Contents() {
			out = le.AppendUint64(out, v)
		}
	case "FP32":
		for _, v := range c.GetFp32Contents() {
			out = le.AppendUint32(out, math.Float32bits(v))
		}
	case "FP64":
		for _, v := range c.GetFp64Contents() {
			out = le.AppendUint64(out, math.Float64bits(v))
		}
	case "BYTES":
		for _, v := range c.GetBytesContents() {
			out = append(le.AppendUint32(out, uint32(len(v))), v...)
		}
	default:
		return nil, fmt.Errorf("datatype %q has no typed contents field: send raw_input_contents", datatype)
	}
	return out, nil
}
