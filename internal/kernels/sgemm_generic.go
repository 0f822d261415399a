//go:build !amd64 || noasm

package kernels

func availableBackends() []*backend { return []*backend{goBackend} }
