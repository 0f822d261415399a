// Package onnxpb holds the Go types generated from the ONNX protobuf schema.
//
// onnx.proto is Debian libonnx-dev's /usr/include/onnx/onnx.proto (ONNX 1.12, IR
// version 8; the proto2 flavour, which is wire-compatible with onnx.proto3) with one
// added go_package option. Regenerate with `go generate ./internal/onnx/onnxpb`
// (needs protoc and protoc-gen-go v1.36).
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative onnx.proto
