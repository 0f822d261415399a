// Package registry persists the platform's deployed functions in an embedded bbolt
// database in the data directory, so restarting `spindle up` brings them back.
package registry
