// Package gateway is the platform's front door: it routes OIP v2 requests to
// function instances, starting an instance on the first request (scale from zero)
// and holding requests until it is ready, and serves the admin API that deploys
// and removes functions.
package gateway
