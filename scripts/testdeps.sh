#!/usr/bin/env bash
# Installs everything Spindle's tests need on a fresh Debian 12 machine with Go:
# ONNX's conformance suite (apt), ONNX Runtime and the other reference
# implementations (npm, into tools/node), and the tokenizer test data (Go module
# cache). Safe to rerun: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -d /usr/share/libonnx-testdata/data/node ] || need_apt+=(libonnx-testdata)
command -v curl >/dev/null || need_apt+=(curl) # the demo test runs the printed curl line
command -v node >/dev/null || need_apt+=(nodejs npm)
# A gRPC client that is not Spindle's (issue 15): Python's grpcio, with stubs
# generated at test time by grpc_tools from Spindle's .proto.
/usr/bin/python3 -c 'import grpc, grpc_tools' 2>/dev/null || need_apt+=(python3-grpcio python3-grpc-tools)
# A real browser for the dashboard's tests (issue 17), driven by chromedp.
command -v chromium >/dev/null || need_apt+=(chromium)
# A Kubernetes client that is not Spindle's, for the operator's tests (issue 18).
command -v kubectl >/dev/null || need_apt+=(kubectl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "testdeps: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -f tools/node/node_modules/.spindle-installed ] || [ tools/node/package-lock.json -nt tools/node/node_modules/.spindle-installed ]; then
  echo "testdeps: npm ci in tools/node"
  # onnxruntime-node's install script fetches optional CUDA files from a host
  # that is not reachable here; the CPU library ships inside the package.
  (cd tools/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  touch tools/node/node_modules/.spindle-installed
fi

# The local control plane of the operator's tests (issue 18): the upstream
# kube-apiserver with an embedded etcd, and kwok (built once, then cached).
bash scripts/kube-tools.sh

# A real BERT-uncased tokenizer.json, used as tokenizer test data only.
go mod download github.com/clems4ever/all-minilm-l6-v2-go@v0.0.9 >/dev/null
