//go:build !noasm

package kernels

func availableBackends() []*backend { return []*backend{goBackend} }
