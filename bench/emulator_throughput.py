"""Benchmark: signed BatchMeterUsage requests per second the emulator serves (quotas off), and its memory.

The emulator runs as its own process (``python -m metering_emulator --no-quotas``); load comes from client
processes on keep-alive connections, each request freshly SigV4-signed (a small signer written here, not
the emulator's). For scale the same load is run against a peer: a bare stdlib ThreadingHTTPServer that
answers a fixed JSON body without any checks, i.e. the ceiling of the HTTP stack the emulator is built on.

    python bench/emulator_throughput.py [--seconds 5] [--processes 2] [--threads 2] [--records 5]

Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing as mp
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ACCESS_KEY = "AKIABENCHMARK0000001"
SECRET_KEY = "bench/Secret+Key/NotForProduction"
PRODUCT = "bench-product-0001"
CUSTOMERS = 2000
DIMENSIONS = ["users", "api_calls", "storage_gb"]

PEER_SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = b'{"Results":[],"UnprocessedRecords":[]}'
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: "
                         + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
class S(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
s = S(("127.0.0.1", 0), H)
print(f"peer listening on http://127.0.0.1:{s.server_address[1]}", flush=True)
s.serve_forever()
"""


def _sign(body: bytes, host: str, amz_date: str) -> dict[str, str]:
    """SigV4 headers for POST / (written for this benchmark from the published algorithm)."""
    date = amz_date[:8]
    headers = {"content-type": "application/x-amz-json-1.1", "host": host, "x-amz-date": amz_date,
               "x-amz-target": "AWSMPMeteringService.BatchMeterUsage"}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["POST", "/", "", "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed,
                           hashlib.sha256(body).hexdigest()])
    scope = f"{date}/us-east-1/aws-marketplace/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (date, "us-east-1", "aws-marketplace", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": headers["content-type"], "X-Amz-Date": amz_date, "X-Amz-Target": headers["x-amz-target"],
        "Authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed}, "
                         f"Signature={signature}",
    }


def _worker(port: int, seconds: float, threads: int, records: int, seed: int, out: Any) -> None:
    """One load process: ``threads`` keep-alive connections sending signed batches until the deadline."""
    counts = {"ok": 0, "error": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(tid: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        host = f"127.0.0.1:{port}"
        n = seed * 1_000_000 + tid * 100_000
        ok = err = 0
        hour = int(time.time()) // 3600 * 3600
        while time.monotonic() < deadline:
            batch = []
            for _ in range(records):
                n += 1
                batch.append({"Timestamp": hour - (n % 5) * 3600, "CustomerIdentifier": f"c-{n % CUSTOMERS:05d}",
                              "Dimension": DIMENSIONS[n % 3], "Quantity": n % 7})
            body = json.dumps({"ProductCode": PRODUCT, "UsageRecords": batch}).encode()
            conn.request("POST", "/", body=body, headers=_sign(body, host, time.strftime("%Y%m%dT%H%M%SZ",
                                                                                          time.gmtime())))
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                ok += 1
            else:
                err += 1
        conn.close()
        with lock:
            counts["ok"] += ok
            counts["error"] += err

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(counts)


def _load(port: int, args: argparse.Namespace) -> tuple[float, int, int]:
    queue: Any = mp.Queue()
    procs = [mp.Process(target=_worker, args=(port, args.seconds, args.threads, args.records, i, queue))
             for i in range(args.processes)]
    start = time.monotonic()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - start
    ok = sum(r["ok"] for r in results)
    return ok / elapsed, ok, sum(r["error"] for r in results)


def _start(command: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    m = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
    if not m:
        proc.kill()
        raise SystemExit("server did not print its URL")
    return proc, int(m.group(1))


def _rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> None:
    """Run the emulator and the peer under the same load and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--records", type=int, default=5, help="usage records per BatchMeterUsage request")
    args = p.parse_args()
    fixtures = {
        "credentials": [{"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "accountId": "999900001111"}],
        "products": [{"productCode": PRODUCT, "dimensions": DIMENSIONS,
                      "customers": [{"customerIdentifier": f"c-{i:05d}"} for i in range(CUSTOMERS)]}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fixtures.json"
        path.write_text(json.dumps(fixtures), encoding="utf-8")
        emu, port = _start([sys.executable, "-m", "metering_emulator", "--port", "0", "--no-quotas",
                            "--log-level", "WARNING", "--fixtures", str(path)])
        try:
            rss_idle = _rss_mib(emu.pid)
            rate, ok, errors = _load(port, args)
            rss_loaded = _rss_mib(emu.pid)
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/_emulator/records")
            stored = len(json.loads(conn.getresponse().read())["records"])
        finally:
            emu.terminate()
            emu.wait(timeout=10)
    peer, peer_port = _start([sys.executable, "-c", PEER_SERVER])
    try:
        peer_rate, _, _ = _load(peer_port, args)
    finally:
        peer.terminate()
        peer.wait(timeout=10)
    print(f"load: {args.processes} processes x {args.threads} keep-alive connections, {args.seconds:.0f} s, "
          f"{args.records} records per BatchMeterUsage, every request freshly SigV4-signed")
    print(f"emulator (quotas off): {rate:,.0f} signed BatchMeterUsage req/s "
          f"({ok} ok, {errors} errors, {stored} distinct records stored)")
    print(f"peer (bare stdlib ThreadingHTTPServer, no checks): {peer_rate:,.0f} req/s")
    print(f"emulator / peer: {rate / peer_rate:.2f}")
    print(f"emulator RSS: {rss_idle:.1f} MiB idle, {rss_loaded:.1f} MiB after the run "
          f"({(rss_loaded - rss_idle) * 1024 / max(stored, 1):.2f} KiB per stored record)")


if __name__ == "__main__":
    main()
