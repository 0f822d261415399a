// Package oipgrpc holds the Open Inference Protocol's gRPC service
// (inference.GRPCInferenceService), generated from grpc_service.proto.
package oipgrpc

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative grpc_service.proto
