#!/usr/bin/env python3
"""Makes the bed's own services (the API server, the AWS fake: 127.0.0.1 on the host) reachable
at the same 127.0.0.1 addresses from inside a namespace, so a program started there with
testbed/netns/run.sh --forward PORT (the operator, with its kubeconfig and AWS_ENDPOINT_URL
unchanged) talks to them while everything else it sends (its probes) goes over the namespace's
veth pair, as from an instance in the VPC.

Run inside the namespace (ip netns exec), with the host's network namespace open on --host-netns-fd:
it listens on 127.0.0.1:PORT in the namespace and, for each connection, connects to 127.0.0.1:PORT
from a thread switched to the host's namespace (setns is per thread). Nothing listens outside the
namespace's loopback. It binds, then forks: the parent exits 0 once the port is bound (1 when it
cannot bind, 0 when a forwarder of that port already runs), the child serves until killed (the bed
kills every process of its namespaces on exit).
"""
import argparse
import ctypes
import errno
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def serve_one(inside: socket.socket, host_fd: int, port: int) -> None:
    try:
        setns(host_fd)
        outside = socket.create_connection(("127.0.0.1", port), timeout=10)
        outside.settimeout(None)
    except OSError:
        inside.close()
        return
    back = threading.Thread(target=pump, args=(outside, inside), daemon=True)
    back.start()
    pump(inside, outside)
    back.join()
    inside.close()
    outside.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host-netns-fd", type=int, required=True)
    a = ap.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", a.port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return 0
        print(f"forward.py: cannot listen on 127.0.0.1:{a.port}: {e}", file=sys.stderr)
        return 1
    listener.listen(64)
    if os.fork() > 0:
        return 0
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_one, args=(conn, a.host_netns_fd, a.port), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
