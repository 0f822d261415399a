// Package instance is a function instance: one loaded model served over the Open
// Inference Protocol v2 REST API by a bounded pool of workers that all share it.
//
// This is the thesis's unit of scaling (ch. 5.1): more load is met with more
// workers and more CPU for the same process, not more copies of the model.
package instance
