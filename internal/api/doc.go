// Package api holds the types that cross a process boundary as JSON: what the
// gateway, its instances (serving or checking a model), the CLI's client and
// the experiments send each other. One home for each, so that a field
// renamed on one side is renamed on the other.
package api
