// Package dashboard serves the web page `spindle up` shows at /: its HTML,
// script and styles, embedded in the binary, with uPlot (vendored from npm,
// see assets/vendor/VERSION) for the charts. The page holds no data of its
// own: it reads the gateway's JSON APIs and its event stream with the
// caller's key.
package dashboard
