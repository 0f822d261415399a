// Package testbin builds the spindle binary for tests that run it as a real
// process: the CLI's end-to-end tests and the gateway's instances.
package testbin
