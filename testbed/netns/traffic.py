#!/usr/bin/env python3
"""A client that calls an API in a loop, as an application in a VPC does, for the availability
checks of the end-to-end tests: run it inside a namespace with testbed/netns/run.sh.

Every 1/--rate seconds it reads the URL from --url-file (so a test can make it follow status.url),
sends GET on a new connection (name, TCP, TLS each time: every request goes through the bed's DNS,
the endpoint's security groups and the data plane) with --timeout, and appends one JSON line to
--out: {"t": epoch seconds at the start, "url": ..., "status": HTTP status or 0, "error": "..."}.
It stops when --url-file is removed or on SIGTERM.
"""
import argparse
import json
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cacert", required=True)
    ap.add_argument("--rate", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    context = ssl.create_default_context(cafile=a.cacert)
    # Proxies from the environment never apply inside the namespace.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    period = 1.0 / a.rate
    next_at = time.monotonic()
    with open(a.out, "a", buffering=1) as out:
        while True:
            try:
                with open(a.url_file) as f:
                    url = f.read().strip()
            except FileNotFoundError:
                return 0
            started = time.time()
            status, error = 0, ""
            try:
                with opener.open(urllib.request.Request(url, headers={"Connection": "close"}),
                                 timeout=a.timeout) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as e:
                status, error = e.code, e.read().decode("utf-8", "replace")[:200]
            except Exception as e:  # noqa: BLE001 - every failure is a sample
                error = f"{type(e).__name__}: {e}"[:200]
            out.write(json.dumps({"t": started, "url": url, "status": status, "error": error}) + "\n")
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()


if __name__ == "__main__":
    sys.exit(main())
