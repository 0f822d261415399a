// Package tensor defines the typed, shaped n-dimensional arrays that flow through
// Spindle: model weights, request inputs and engine outputs.
//
// A Tensor's data is one typed Go slice. It may be a view into memory the tensor
// does not own (a read-only mmap of a model file), so code that did not allocate a
// tensor must treat its data as read-only.
package tensor
