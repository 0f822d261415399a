// Package client talks to a Spindle gateway: deploying models, listing and
// removing functions, and invoking them with tensors.
package client
