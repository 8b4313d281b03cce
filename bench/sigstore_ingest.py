#!/usr/bin/env python3
"""Cost of verifying a Sigstore bundle on ingest, beside its baseline.

Starts `evault serve` (auth and audit on) with the production trusted root
of testdata/sigstore, then POSTs, one request at a time, N times each and
interleaved in rounds so machine noise hits both alike:
  - the happy-path-v0.3 bundle as `application/vnd.dev.sigstore.bundle.v0.3+json`
    (verified offline: chain, SCT, Rekor inclusion proof and checkpoint,
    signature), and
  - the same bytes with its `mediaType` member renamed (`mediaTyp_`, so it
    is no bundle) as `application/json`: the baseline, same size, same path
    through the vault, no verification.
Each request carries a distinct label, so none is a dedup hit.

Usage: bench/sigstore_ingest.py EVAULT_BINARY [N]   (default N = 300)
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
evault = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
testdata = os.path.join(root, "testdata", "sigstore")
bundle = open(os.path.join(testdata, "happy-path-v0.3", "bundle.sigstore.json"), "rb").read()
plain = bundle.replace(b'"mediaType"', b'"mediaTyp_"')
assert len(plain) == len(bundle) and plain != bundle

work = tempfile.mkdtemp(prefix="evault-sigbench-")
data = os.path.join(work, "data")
cfg = os.path.join(work, "evault.toml")
with open(cfg, "w") as f:
    f.write(
        "inline_max = 65536\n[sigstore]\ntrusted_roots = [{ name = \"production\", path = %s }]\n"
        % json.dumps(os.path.join(testdata, "trusted_root.json"))
    )
out = subprocess.check_output(
    [evault, "sa", "create", "--data-dir", data, "--principal", "bench",
     "--roles", "ingester", "--json"])
key_id = json.loads(out)["created"]["key_id"]
token = subprocess.check_output(
    [evault, "token", "mint", "--data-dir", data, "--key-id", key_id, "--ttl", "1h"]
).decode().strip()
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
server = subprocess.Popen(
    [evault, "serve", "--config", cfg, "--data-dir", data, "--state-dir",
     os.path.join(work, "state"), "--listen", f"127.0.0.1:{port}", "--grpc-listen", "off"],
    stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "w"))
try:
    deadline = time.time() + 60
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if time.time() > deadline or server.poll() is not None:
            sys.exit("evault serve did not start; see " + work + "/serve.log")
        time.sleep(0.1)

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def put(content_type, i, kind):
        t = time.perf_counter()
        body = plain if content_type == "application/json" else bundle
        conn.request("POST", f"/api/v1/evidence?label=bench%3D{kind}-{i}", body=body,
                     headers={"Content-Type": content_type,
                              "Authorization": "Bearer " + token})
        r = conn.getresponse()
        body = r.read()
        if r.status != 201:
            sys.exit(f"{kind} {i}: {r.status} {body[:300]!r}")
        return time.perf_counter() - t, json.loads(body)

    _, first = put("application/vnd.dev.sigstore.bundle.v0.3+json", -1, "check")
    labels = first["record"]["labels"]
    assert labels.get("evault.sigstore.status") == "verified", labels
    times = {"sigstore": [], "json": []}
    for i in range(n):
        times["sigstore"].append(put("application/vnd.dev.sigstore.bundle.v0.3+json", i, "s")[0])
        times["json"].append(put("application/json", i, "j")[0])
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    p90 = {k: statistics.quantiles(v, n=10)[-1] * 1000 for k, v in times.items()}
    print(f"{n} sequential puts each of {len(bundle)} bytes (auth and audit on)")
    print("| put | median ms | p90 ms | vs baseline |")
    print("|---|---|---|---|")
    print(f"| baseline: the same bytes, not a bundle, as application/json | {med['json']:.2f} | {p90['json']:.2f} | 1× |")
    print(f"| Sigstore bundle v0.3, verified | {med['sigstore']:.2f} | {p90['sigstore']:.2f} "
          f"| {med['sigstore'] / med['json']:.2f}× |")
    print(f"verification adds {med['sigstore'] - med['json']:.2f} ms per bundle (median)")
finally:
    server.terminate()
    server.wait()
