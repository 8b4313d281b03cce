"""A gRPC client evault did not write: Python grpcio, with stubs generated
from proto/evault/v1 by grpcio-tools. Driven by crates/cli/tests/grpc_interop.rs.

Usage: grpc_client.py STUBS_DIR ADDR TOKEN OUT_DIR

Streams records (every fifth one invalid) through IngestStream, checks the
results come back one per record, in order, with consecutive leaf indexes
for the valid ones and a reason for the others; asks the health service;
then fetches an inclusion proof and writes its bundle to OUT_DIR/bundle.json
for the offline verifier. Prints one JSON summary line.
"""

import json
import os
import sys
import time

stubs, addr, token, out_dir = sys.argv[1:5]
sys.path.insert(0, stubs)

import grpc  # noqa: E402
from evault.v1 import evidence_pb2, evidence_pb2_grpc  # noqa: E402
from evault.v1 import log_pb2, log_pb2_grpc  # noqa: E402

N = 200
metadata = (("authorization", "Bearer " + token),)


def fail(msg):
    print("interop: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def requests():
    for i in range(N):
        labels = {"client": "python-grpcio", "n": str(i)}
        content_type = "application/json"
        if i % 5 == 4:
            content_type = "not a media type"
        record = evidence_pb2.Record(
            content_type=content_type,
            payload=json.dumps({"i": i, "from": "python"}).encode(),
            labels=labels,
        )
        yield evidence_pb2.IngestRequest(record=record)


with grpc.insecure_channel(addr) as channel:
    grpc.channel_ready_future(channel).result(timeout=20)
    evidence = evidence_pb2_grpc.EvidenceServiceStub(channel)
    log = log_pb2_grpc.LogServiceStub(channel)

    results = list(evidence.IngestStream(requests(), metadata=metadata, timeout=60))
    if len(results) != N:
        fail(f"{len(results)} results for {N} records")
    accepted = []
    for i, r in enumerate(results):
        if r.sequence != i:
            fail(f"result {i} has sequence {r.sequence}")
        kind = r.WhichOneof("result")
        if i % 5 == 4:
            if kind != "rejected" or "content type" not in r.rejected.reason:
                fail(f"record {i} should be rejected for its content type: {r}")
        else:
            if kind != "accepted":
                fail(f"record {i} was not accepted: {r}")
            accepted.append(r.accepted)
    leaves = [a.leaf_index for a in accepted]
    if leaves != list(range(leaves[0], leaves[0] + len(leaves))):
        fail(f"leaf indexes are not consecutive: {leaves[:10]}...")

    # Unauthenticated calls are refused with the gRPC status for it.
    try:
        evidence.Get(evidence_pb2.GetRequest(id=accepted[0].id), timeout=10)
        fail("a call without a token was answered")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNAUTHENTICATED:
            fail(f"no token: expected UNAUTHENTICATED, got {e.code()}")

    target = accepted[len(accepted) // 2]
    got = evidence.Get(evidence_pb2.GetRequest(id=target.id), metadata=metadata, timeout=10)
    if got.leaf_index != target.leaf_index or got.labels["client"] != "python-grpcio":
        fail(f"Get returned {got}")

    # The proof needs a checkpoint covering the record; they come every 50 ms.
    deadline = time.time() + 20
    while True:
        info = log.GetLogInfo(log_pb2.GetLogInfoRequest(), metadata=metadata, timeout=10)
        if info.checkpoint_size > leaves[-1]:
            break
        if time.time() > deadline:
            fail(f"no checkpoint covers leaf {leaves[-1]}: {info}")
        time.sleep(0.05)
    proof = log.GetInclusionProof(
        log_pb2.GetInclusionProofRequest(id=target.id), metadata=metadata, timeout=10
    )
    if proof.leaf_index != target.leaf_index or not proof.bundle_json:
        fail(f"proof for the wrong leaf: {proof.leaf_index}")
    if any(len(h) != 32 for h in proof.hashes):
        fail("proof hashes are not 32 bytes")
    with open(os.path.join(out_dir, "bundle.json"), "w") as f:
        f.write(proof.bundle_json)

    print(json.dumps({
        "accepted": len(accepted),
        "rejected": N - len(accepted),
        "first_leaf": leaves[0],
        "last_leaf": leaves[-1],
        "proved_leaf": proof.leaf_index,
        "tree_size": proof.tree_size,
        "verifier_key": info.verifier_key,
        "grpcio": grpc.__version__,
    }))
