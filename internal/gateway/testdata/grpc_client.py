"""A gRPC client that is not Spindle's: Python's grpcio, with stubs that
grpc_tools generates from Spindle's grpc_service.proto into a temporary
folder. It calls the Open Inference Protocol's gRPC service as KServe and
Triton clients do and prints what it got as JSON lines for the Go test to
check.

Usage: grpc_client.py PROTO_DIR ADDRESS MODEL [API_KEY]
"""
import json
import os
import struct
import sys
import tempfile

import grpc
from grpc_tools import protoc

proto_dir, address, model = sys.argv[1:4]
key = sys.argv[4] if len(sys.argv) > 4 else ""
out = tempfile.mkdtemp()
if protoc.main(["protoc", "-I" + proto_dir, "--python_out=" + out, "--grpc_python_out=" + out,
                os.path.join(proto_dir, "grpc_service.proto")]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, out)
import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pbg  # noqa: E402

stub = pbg.GRPCInferenceServiceStub(grpc.insecure_channel(address))
md = [("authorization", "Bearer " + key)] if key else []


def emit(**kw):
    print(json.dumps(kw), flush=True)


emit(call="ServerLive", live=stub.ServerLive(pb.ServerLiveRequest(), metadata=md).live)
emit(call="ServerReady", ready=stub.ServerReady(pb.ServerReadyRequest(), metadata=md).ready)
sm = stub.ServerMetadata(pb.ServerMetadataRequest(), metadata=md)
emit(call="ServerMetadata", name=sm.name, extensions=list(sm.extensions))
emit(call="ModelReady", ready=stub.ModelReady(pb.ModelReadyRequest(name=model, version="1"), metadata=md).ready)
mm = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), metadata=md)
emit(call="ModelMetadata", name=mm.name, inputs=[[t.name, t.datatype, list(t.shape)] for t in mm.inputs],
     outputs=[[t.name, t.datatype, list(t.shape)] for t in mm.outputs])

# The add model: y = x + 1 over 4 floats, once with raw_input_contents and
# once with typed contents.
req = pb.ModelInferRequest(model_name=model, model_version="1", id="py-1")
t = req.inputs.add(name="x", datatype="FP32", shape=[4])
req.raw_input_contents.append(struct.pack("<4f", 1, 2, 3, 4))
resp = stub.ModelInfer(req, metadata=md)
emit(call="ModelInfer", id=resp.id, outputs=[[o.name, o.datatype, list(o.shape)] for o in resp.outputs],
     values=list(struct.unpack("<4f", resp.raw_output_contents[0])))
req = pb.ModelInferRequest(model_name=model)
t = req.inputs.add(name="x", datatype="FP32", shape=[4])
t.contents.fp32_contents.extend([0.5, -1, 10, 0])
resp = stub.ModelInfer(req, metadata=md)
emit(call="ModelInferContents", values=list(struct.unpack("<4f", resp.raw_output_contents[0])))

# Errors arrive as gRPC statuses with the REST API's message.
for name, r in [("wrong shape", pb.ModelInferRequest(model_name=model, inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[3])],
                                                    raw_input_contents=[struct.pack("<3f", 1, 2, 3)])),
                ("unknown model", pb.ModelInferRequest(model_name="nope", inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[4])],
                                                      raw_input_contents=[struct.pack("<4f", 1, 2, 3, 4)]))]:
    try:
        stub.ModelInfer(r, metadata=md)
        emit(call="error " + name, code="OK")
    except grpc.RpcError as e:
        emit(call="error " + name, code=e.code().name, details=e.details())
