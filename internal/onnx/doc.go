// Package onnx loads ONNX model files into a graph description and a set of weight
// tensors, copying as little as the chosen LoadMode allows.
//
// The thesis behind Spindle (ch. 4.3, Table 4.2) shows model loading dominates a
// cold start; in Mmap mode the model file and its external data are mapped
// read-only and shared, and weights are views into the mapping, so every process on
// a node shares one physical copy through the page cache.
package onnx
