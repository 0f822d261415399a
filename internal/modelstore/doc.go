// Package modelstore keeps model files content-addressed in the data directory:
// identical model bytes deployed twice are stored once, so every instance that
// serves them maps the same files and shares the same page-cache pages.
package modelstore
