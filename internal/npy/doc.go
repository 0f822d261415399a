// Package npy reads and writes single arrays in NumPy's .npy file format, the
// format Spindle's CLI uses for request inputs and saved outputs.
//
// The format is specified by NumPy Enhancement Proposal 1 ("A simple file format
// for NumPy arrays") and numpy/lib/format.py: a magic string, a version, a
// little-endian header length, a Python dict literal describing the array, and the
// raw element bytes. Versions 1.0, 2.0 and 3.0 are read; Write produces exactly
// the bytes numpy.save (NumPy 1.23 and later) writes for the same array.
package npy
