// Command spindle-controlplane runs a real Kubernetes control plane for
// Spindle's operator tests and `spindle kube dev`: an embedded etcd and the
// upstream kube-apiserver (k8s.io/kubernetes, built from the Go module proxy)
// in one process. It is its own module so that the project's module does not
// depend on k8s.io/kubernetes; scripts/kube-tools.sh builds it.
//
//	spindle-controlplane --data DIR -- [kube-apiserver flags...]
//
// etcd listens on a loopback port it chooses and keeps its data in DIR/etcd;
// the apiserver gets --etcd-servers pointing at it, and every flag after "--".
package main

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	data := flag.String("data", "", "folder for etcd's data (required)")
	flag.Parse()
	if *data == "" {
		fmt.Fprintln(os.Stderr, "spindle-controlplane: --data: required")
		os.Exit(2)
	}
	endpoint, stop, err := startEtcd(filepath.Join(*data, "etcd"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "spindle-controlplane: etcd:", err)
		os.Exit(1)
	}
	defer stop()
	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(append([]string{"--etcd-servers=" + endpoint}, flag.Args()...))
	code := cli.Run(cmd)
	stop()
	os.Exit(code)
}

// startEtcd starts an embedded etcd on two free loopback ports and waits until
// it serves.
func startEtcd(dir string) (string, func(), error) {
	client, err := freeURL()
	if err != nil {
		return "", nil, err
	}
	peer, err := freeURL()
	if err != nil {
		return "", nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = os.Getenv("SPINDLE_ETCD_FSYNC") == "" // a test and dev store
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return "", nil, fmt.Errorf("not ready after 60s")
	}
	return client.String(), e.Close, nil
}

func freeURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	return &url.URL{Scheme: "http", Host: addr}, nil
}
