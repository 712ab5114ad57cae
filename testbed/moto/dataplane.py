"""The test bed's networks as AWS answers them: DNS and an execute-api data plane.

Runs inside the moto server process (server.py --dataplane DIR), reading moto's backends in
memory. DIR is the test bed's state directory: DIR/netns.env names the bed's slot and addresses
(testbed/netns/lib-netns.sh), DIR/netns/ns/*.json the namespaces testbed/netns/run.sh made.

- DNS (UDP, port 53 on $PAPI_NETNS_DNS), answered per caller (the query's source address is a
  namespace, which models an instance in a VPC, or the internet):
    {api}.execute-api.{region}.amazonaws.com   -> the execute-api interface endpoint of the
        caller's VPC that has private DNS enabled; NXDOMAIN elsewhere (internet, other VPCs)
    {api}-{vpce}.execute-api.{region}.amazonaws.com and the endpoint's DnsEntries
                                               -> that endpoint, from anywhere
    anything else                              -> NXDOMAIN (nothing is forwarded)
  An endpoint's address is one of the bed's 198.18 endpoint addresses, given on first sight.
- HTTPS on port 443 of each endpoint address (certificate from the bed's CA, DIR/ca.pem), as
  API Gateway serves a private REST API through an interface endpoint: security groups (a SYN
  from a caller the endpoint's groups do not admit, or that cannot route to the endpoint's VPC,
  is dropped by a socket filter), the API selection by Host / x-apigw-api-id, the stage's
  deployment snapshot, the resource policy, routing, the Lambda permission, and the function's
  real code under aws-lambda-rie. See testbed/README.md, "Networks", for the rules and answers.
"""

from __future__ import annotations

import base64
import copy
import datetime
import fnmatch
import hashlib
import http.client
import http.server
import ipaddress
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

REGIONS = [
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1",
    "eu-south-1", "eu-south-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-south-1",
    "ap-south-2", "ap-east-1", "sa-east-1", "me-south-1", "me-central-1", "af-south-1",
    "il-central-1", "mx-central-1",
]
DEFAULT_INTEGRATION_TIMEOUT_MS = 29000


def log(msg: str) -> None:
    print(f"papi dataplane: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Deployment snapshots (recorded by the correction in server.py at CreateDeployment)
# --------------------------------------------------------------------------------------------


def snapshot(api: Any) -> dict[str, Any]:
    """What a deployment freezes: resources, methods, integrations and the resource policy."""
    resources = []
    for res in list(api.resources.values()):
        methods = {}
        for verb, m in list(res.resource_methods.items()):
            integ = m.method_integration
            methods[verb] = {
                "authorizationType": m.authorization_type,
                "integration": None if integ is None else {
                    "type": integ.integration_type,
                    "uri": integ.uri,
                    "httpMethod": integ.http_method,
                    "timeoutInMillis": integ.timeout_in_millis,
                },
            }
        resources.append({"id": res.id, "path": res.get_path(), "methods": methods})
    return {"resources": resources, "policy": copy.deepcopy(api.policy)}


# --------------------------------------------------------------------------------------------
# moto state
# --------------------------------------------------------------------------------------------


def _backends(backend_dict: Any) -> list[tuple[str, str, Any]]:
    out = []
    for account, per_region in list(dict.items(backend_dict)):
        for region, backend in list(dict.items(per_region)):
            out.append((account, region, backend))
    return out


def ec2_backends() -> list[tuple[str, str, Any]]:
    from moto.ec2.models import ec2_backends as b

    return _backends(b)


def find_vpc(vpc_id: str) -> tuple[Any, Any] | None:
    for _, _, be in ec2_backends():
        vpc = be.vpcs.get(vpc_id)
        if vpc is not None:
            return be, vpc
    return None


class Endpoint:
    """An available execute-api interface endpoint, as the data plane sees it."""

    def __init__(self, account: str, region: str, backend: Any, ep: Any) -> None:
        self.account, self.region, self.backend, self.ep = account, region, backend, ep
        self.id: str = ep.id
        self.vpc_id: str = ep.vpc_id
        self.private_dns: bool = bool(ep.private_dns_enabled)
        self.dns_names = [e.get("dns_name", "").lower() for e in (ep.dns_entries or [])]
        self.security_group_ids = list(ep.security_group_ids or [])


def execute_api_endpoints() -> list[Endpoint]:
    out = []
    for account, region, be in ec2_backends():
        for ep in list(be.vpc_end_points.values()):
            if (ep.vpc_endpoint_type or "").lower() != "interface":
                continue
            if ep.service_name != f"com.amazonaws.{region}.execute-api":
                continue
            if ep.state != "available":
                continue
            out.append(Endpoint(account, region, be, ep))
    return out


def peered(a: str, b: str) -> bool:
    for _, _, be in ec2_backends():
        for pcx in list(getattr(be, "vpc_pcxs", {}).values()):
            if pcx._status.code != "active":
                continue
            if {pcx.vpc.id, pcx.peer_vpc.id} == {a, b}:
                return True
    return False


class Caller:
    """A namespace of the bed: an instance in a VPC (with security groups) or the internet."""

    def __init__(self, rec: dict[str, Any], index: int) -> None:
        self.name: str = rec["name"]
        self.address: str = rec["address"]
        self.vpc_id: str | None = rec.get("vpc")
        self.internet: bool = bool(rec.get("internet"))
        self.given_groups: list[str] = list(rec.get("security_groups") or [])
        self.index = index

    def groups(self) -> list[str]:
        """Its groups; none given: the VPC's default group, as EC2 does for an instance."""
        if self.given_groups or not self.vpc_id:
            return self.given_groups
        found = find_vpc(self.vpc_id)
        if found is None:
            return []
        be, _ = found
        g = be.get_security_group_from_name("default", vpc_id=self.vpc_id)
        return [g.id] if g is not None else []

    def source_ip(self) -> str:
        """The caller's private address in its VPC's CIDR (what security groups and aws:SourceIp
        see); the internet caller's own address."""
        if not self.vpc_id:
            return self.address
        found = find_vpc(self.vpc_id)
        if found is None:
            return self.address
        net = ipaddress.ip_network(found[1].cidr_block, strict=False)
        span = max(1, net.num_addresses - 5)
        return str(net.network_address + 4 + (100 + self.index) % span)


def _rule_port_ok(rule: Any, port: int) -> bool:
    proto = rule.ip_protocol
    if proto == "-1":
        return True
    if proto != "tcp":
        return False
    return rule.from_port is not None and rule.from_port <= port <= rule.to_port


def _rule_peer_ok(rule: Any, ip: str, groups: list[str]) -> bool:
    cidr = (rule.ip_range or {}).get("CidrIp")
    if cidr:
        try:
            if ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            pass
    gid = (rule.source_group or {}).get("GroupId")
    return bool(gid and gid in groups)


def admitted(caller: Caller, ep: Endpoint) -> bool:
    """Can `caller` open tcp/443 to the endpoint? Route (same or peered VPC), the endpoint's
    groups' ingress, the caller's groups' egress."""
    if caller.internet or not caller.vpc_id:
        return False  # an endpoint's addresses are private: no route from the internet
    if caller.vpc_id != ep.vpc_id and not peered(caller.vpc_id, ep.vpc_id):
        return False
    src = caller.source_ip()
    mine = caller.groups()
    ok = False
    for gid in ep.security_group_ids:
        g = ep.backend.get_security_group_from_id(gid)
        if g is None:
            continue
        if any(_rule_port_ok(r, 443) and _rule_peer_ok(r, src, mine) for r in list(g.ingress_rules)):
            ok = True
            break
    if not ok:
        return False
    if not mine:
        return True
    dests = []
    for eni_id in list(ep.ep.network_interface_ids or []):
        eni = ep.backend.enis.get(eni_id)
        if eni is not None and getattr(eni, "private_ip_address", None):
            dests.append(eni.private_ip_address)
    found = find_vpc(caller.vpc_id)
    for gid in mine:
        g = found[0].get_security_group_from_id(gid) if found else None
        if g is None:
            continue
        for r in list(g.egress_rules):
            if _rule_port_ok(r, 443) and any(_rule_peer_ok(r, d, ep.security_group_ids) for d in dests or ["0.0.0.0"]):
                return True
    return False


# --------------------------------------------------------------------------------------------
# Resource policy (API Gateway) and Lambda permission evaluation
# --------------------------------------------------------------------------------------------


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _wild(pattern: str, value: str, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, flags=re.S) is not None


def _condition_ok(cond: dict[str, Any], ctx: dict[str, str]) -> bool:
    keys = {k.lower(): v for k, v in ctx.items()}
    for op, block in (cond or {}).items():
        if not isinstance(block, dict):
            return False
        base = op
        if_exists = base.endswith("IfExists")
        if if_exists:
            base = base[: -len("IfExists")]
        for key, want in block.items():
            have = keys.get(key.lower())
            wants = [str(w) for w in _as_list(want)]
            if have is None:
                if if_exists or base.startswith(("StringNot", "ArnNot", "NotIp")):
                    continue
                return False
            if base == "StringEquals" or base == "ArnEquals":
                r = have in wants
            elif base == "StringNotEquals" or base == "ArnNotEquals":
                r = have not in wants
            elif base == "StringEqualsIgnoreCase":
                r = have.lower() in [w.lower() for w in wants]
            elif base == "StringNotEqualsIgnoreCase":
                r = have.lower() not in [w.lower() for w in wants]
            elif base in ("StringLike", "ArnLike"):
                r = any(_wild(w, have) for w in wants)
            elif base in ("StringNotLike", "ArnNotLike"):
                r = not any(_wild(w, have) for w in wants)
            elif base in ("IpAddress", "NotIpAddress"):
                try:
                    inside = any(ipaddress.ip_address(have) in ipaddress.ip_network(w, strict=False) for w in wants)
                except ValueError:
                    inside = False
                r = inside if base == "IpAddress" else not inside
            else:
                log(f"condition operator {op} not supported: statement does not match")
                return False
            if not r:
                return False
    return True


def _principal_ok(st: dict[str, Any], service: str | None) -> bool:
    if "NotPrincipal" in st:
        return False
    p = st.get("Principal")
    if p == "*":
        return True
    if isinstance(p, dict):
        if "*" in _as_list(p.get("AWS")):
            return True
        if service and service in _as_list(p.get("Service")):
            return True
    return False


def _action_ok(st: dict[str, Any], action: str) -> bool:
    if "Action" in st:
        return any(_wild(a, action, case=False) for a in _as_list(st["Action"]))
    if "NotAction" in st:
        return not any(_wild(a, action, case=False) for a in _as_list(st["NotAction"]))
    return False


def _resource_ok(st: dict[str, Any], resource: str, api_prefix: str) -> bool:
    def expand(r: str) -> str:
        return api_prefix + r[len("execute-api:"):] if r.startswith("execute-api:") else r

    if "Resource" in st:
        return any(_wild(expand(r), resource) for r in _as_list(st["Resource"]))
    if "NotResource" in st:
        return not any(_wild(expand(r), resource) for r in _as_list(st["NotResource"]))
    return False


def evaluate(policy: Any, *, principal_service: str | None, action: str, resource: str,
             api_prefix: str, ctx: dict[str, str]) -> str:
    """'allow', 'deny' (explicit) or 'none' (implicit deny)."""
    try:
        doc = json.loads(policy) if isinstance(policy, str) else policy
    except ValueError:
        return "none"
    if not isinstance(doc, dict):
        return "none"
    allowed = False
    for st in _as_list(doc.get("Statement")):
        if not isinstance(st, dict):
            continue
        if not (_principal_ok(st, principal_service) and _action_ok(st, action)
                and _resource_ok(st, resource, api_prefix) and _condition_ok(st.get("Condition") or {}, ctx)):
            continue
        if st.get("Effect") == "Deny":
            return "deny"
        if st.get("Effect") == "Allow":
            allowed = True
    return "allow" if allowed else "none"


# --------------------------------------------------------------------------------------------
# Lambda under aws-lambda-rie
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Runtime:
    """One aws-lambda-rie serving one function configuration, one invocation at a time."""

    def __init__(self, rie: str, code_dir: str, cmd: list[str], env: dict[str, str], log_path: str) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        last = ""
        for _ in range(5):
            p1, p2 = _free_port(), _free_port()
            logf = open(log_path, "ab")
            proc = subprocess.Popen(
                [rie, "--runtime-interface-emulator-address", f"127.0.0.1:{p1}",
                 "--runtime-api-address", f"127.0.0.1:{p2}", *cmd],
                cwd=code_dir, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                start_new_session=True)
            logf.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", p1), timeout=0.5).close()
                    self.proc, self.port = proc, p1
                    return
                except OSError:
                    time.sleep(0.05)
            last = f"exit code {proc.poll()}"
            self.stop_proc(proc)
        raise RuntimeError(f"aws-lambda-rie did not start ({last}); see {log_path}")

    @staticmethod
    def stop_proc(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # RIE SIGKILLs the runtime it started
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            self.stop_proc(self.proc)

    def invoke(self, event: bytes, timeout: float) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", "/2015-03-31/functions/function/invocations", body=event,
                         headers={"Content-Type": "application/json"})
            return conn.getresponse().read()
        finally:
            conn.close()


class Lambdas:
    def __init__(self, state_dir: str) -> None:
        self.rie = os.environ.get("PAPI_RIE") or os.path.join(
            os.environ.get("PAPI_CACHE", os.path.expanduser("~/.cache/privateapi-operator")), "bin", "aws-lambda-rie")
        self.node_ric = os.environ.get("PAPI_NODE_RIC") or os.path.join(
            os.environ.get("PAPI_CACHE", os.path.expanduser("~/.cache/privateapi-operator")),
            "node-ric", "node_modules", "aws-lambda-ric", "index.mjs")
        self.dir = os.path.join(state_dir, "dataplane")
        self.idle: dict[str, list[Runtime]] = {}
        self.lock = threading.Lock()

    def _code_dir(self, fn: Any) -> str:
        digest = hashlib.sha256(fn.code_bytes).hexdigest()
        d = os.path.join(self.dir, "code", digest)
        if not os.path.isdir(d):
            tmp = d + f".{uuid.uuid4().hex}"
            os.makedirs(tmp)
            with zipfile.ZipFile(__import__("io").BytesIO(fn.code_bytes)) as z:
                for info in z.infolist():
                    path = z.extract(info, tmp)
                    mode = (info.external_attr >> 16) & 0o777
                    if mode:
                        os.chmod(path, mode)
            try:
                os.rename(tmp, d)
            except OSError:
                subprocess.run(["rm", "-rf", tmp], check=False)
        return d

    def _config(self, fn: Any, region: str) -> tuple[str, list[str], dict[str, str], str]:
        runtime = fn.run_time or ""
        if runtime.startswith("provided"):
            cmd_of = lambda code_dir: [os.path.join(code_dir, "bootstrap")]  # noqa: E731
        elif runtime.startswith("nodejs"):
            # The Node.js runtime interface client (testbed/rie/install-node-ric.sh) loads the
            # handler (`file.export`) from the task root, as Lambda's nodejs runtimes do.
            ric = self.node_ric
            if not os.path.isfile(ric):
                raise NotImplementedError(f"runtime {runtime!r} needs {ric} (testbed/rie/install-node-ric.sh)")
            cmd_of = lambda code_dir: ["node", ric, fn.handler or ""]  # noqa: E731
        else:
            raise NotImplementedError(f"runtime {runtime!r} is not run by the test bed (provided.*, nodejs*)")
        code_dir = self._code_dir(fn)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": ":UTC",
            **{str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
            "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(fn.timeout),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "_HANDLER": fn.handler or "", "LAMBDA_TASK_ROOT": code_dir,
        }
        key = hashlib.sha256(json.dumps([fn.function_arn, code_dir, env], sort_keys=True).encode()).hexdigest()
        return key, cmd_of(code_dir), env, code_dir

    def invoke(self, fn: Any, region: str, event: dict[str, Any], timeout: float) -> bytes:
        """The function's answer; raises TimeoutError when `timeout` passes first."""
        key, cmd, env, code_dir = self._config(fn, region)
        with self.lock:
            pool = self.idle.setdefault(key, [])
            rt = pool.pop() if pool else None
        if rt is None:
            os.makedirs(self.dir, exist_ok=True)
            rt = Runtime(self.rie, code_dir, cmd, env, os.path.join(self.dir, "lambda.log"))
        try:
            out = rt.invoke(json.dumps(event).encode(), timeout)
        except (socket.timeout, TimeoutError):
            rt.stop()
            raise TimeoutError()
        except Exception:
            rt.stop()
            raise
        if b"Task timed out" in out[:200]:
            rt.stop()  # the runtime was reset; start clean next time
        else:
            with self.lock:
                self.idle.setdefault(key, []).append(rt)
        return out

    def stop_all(self) -> None:
        with self.lock:
            for pool in self.idle.values():
                for rt in pool:
                    rt.stop()
            self.idle.clear()


# --------------------------------------------------------------------------------------------
# The TLS certificate
# --------------------------------------------------------------------------------------------


def make_certs(state_dir: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "papi test bed execute-api CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for r in REGIONS:
        sans.append(x509.DNSName(f"*.execute-api.{r}.amazonaws.com"))
        sans.append(x509.DNSName(f"*.execute-api.{r}.vpce.amazonaws.com"))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "*.execute-api.us-east-1.amazonaws.com")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    d = os.path.join(state_dir, "dataplane")
    os.makedirs(d, exist_ok=True)
    ca_path = os.path.join(state_dir, "ca.pem")
    with open(ca_path + ".tmp", "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    os.replace(ca_path + ".tmp", ca_path)
    cert_path, key_path = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


# --------------------------------------------------------------------------------------------
# Dropping SYNs: a classic BPF socket filter admitting a list of source addresses
# --------------------------------------------------------------------------------------------

SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27
SKF_NET_OFF = -0x100000


def attach_allowlist(sock: socket.socket, addresses: list[str]) -> None:
    import ctypes

    n = len(addresses)
    prog = [(0x20, 0, 0, (SKF_NET_OFF + 12) & 0xFFFFFFFF)]  # ld [net + 12]: the IPv4 source
    for j, a in enumerate(addresses, start=1):
        prog.append((0x15, n + 1 - j, 0, int(ipaddress.ip_address(a))))  # jeq a -> accept
    prog.append((0x06, 0, 0, 0))  # ret 0: drop
    prog.append((0x06, 0, 0, 0xFFFFFFFF))  # accept
    raw = b"".join(struct.pack("HBBI", *i) for i in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# --------------------------------------------------------------------------------------------
# DNS
# --------------------------------------------------------------------------------------------


def _qname(data: bytes, off: int) -> tuple[str, int]:
    labels = []
    while True:
        n = data[off]
        off += 1
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compressed question")
        labels.append(data[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels), off


def dns_answer(query: bytes, resolve: Any) -> bytes | None:
    if len(query) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qd != 1:
        return None
    try:
        name, off = _qname(query, 12)
        qtype, qclass = struct.unpack("!HH", query[off:off + 4])
    except (ValueError, IndexError, struct.error):
        return struct.pack("!HHHHHH", qid, 0x8181, 0, 0, 0, 0)  # FORMERR
    question = query[12:off + 4]
    addr = resolve(name.lower().rstrip("."))
    rd = flags & 0x0100
    if addr is None:
        return struct.pack("!HHHHHH", qid, 0x8403 | rd, 1, 0, 0, 0) + question  # NXDOMAIN, AA
    answers = b""
    count = 0
    if qtype in (1, 255) and qclass == 1:
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(addr)
        count = 1
    return struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, count, 0, 0) + question + answers


# --------------------------------------------------------------------------------------------
# The data plane
# --------------------------------------------------------------------------------------------

PRIVATE_NAME = re.compile(r"^([a-z0-9]+)\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
VPCE_NAME = re.compile(r"^([a-z0-9]+)-(vpce-[0-9a-f]+)\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
LAMBDA_URI = re.compile(r":lambda:path/2015-03-31/functions/(arn:[^/]+)/invocations$")


def read_env(path: str) -> dict[str, str]:
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export "):
                line = line[len("export "):]
            for part in line.split():
                if "=" in part:
                    k, v = part.split("=", 1)
                    out[k] = v
    return out


class DataPlane:
    def __init__(self, state_dir: str) -> None:
        self.dir = state_dir
        env = read_env(os.path.join(state_dir, "netns.env"))
        self.dns_ip = env["PAPI_NETNS_DNS"]
        first, last = env["PAPI_NETNS_ENDPOINTS"].split("-")
        lo, hi = int(ipaddress.ip_address(first)), int(ipaddress.ip_address(last))
        self.free = [str(ipaddress.ip_address(i)) for i in range(lo, hi + 1)]
        self.addr_of: dict[str, str] = {}  # vpce id -> address
        self.listeners: dict[str, Listener] = {}
        self.lock = threading.RLock()
        self.callers: dict[str, Caller] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.lambdas = Lambdas(state_dir)
        cert, key = make_certs(state_dir)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)

    # -- state ---------------------------------------------------------------------------------

    def load_callers(self) -> None:
        d = os.path.join(self.dir, "netns", "ns")
        callers = {}
        try:
            names = os.listdir(d)
        except OSError:
            names = []
        for n in names:
            if not n.endswith(".json") or n.startswith("."):
                continue
            try:
                with open(os.path.join(d, n)) as f:
                    rec = json.load(f)
                old = self.callers.get(rec["address"])
                index = int(ipaddress.ip_address(rec["address"])) & 0x3FF
                callers[rec["address"]] = old if old and old.name == rec["name"] else Caller(rec, index)
            except (OSError, ValueError, KeyError):
                continue
        self.callers = callers

    def sync(self) -> None:
        """Endpoints -> addresses and listeners; callers -> each listener's SYN allowlist."""
        with self.lock:
            self.load_callers()
            eps = {e.id: e for e in execute_api_endpoints()}
            for gone in [i for i in self.listeners if i not in eps]:
                self.listeners.pop(gone).close()
                self.free.append(self.addr_of.pop(gone))
            self.endpoints = eps
            for ep in eps.values():
                if ep.id not in self.addr_of:
                    self.addr_of[ep.id] = self.free.pop(0)
                lst = self.listeners.get(ep.id)
                if lst is None:
                    try:
                        lst = Listener(self, ep.id, self.addr_of[ep.id])
                    except OSError as e:
                        log(f"cannot listen on {self.addr_of[ep.id]}:443 for {ep.id}: {e}")
                        continue
                    self.listeners[ep.id] = lst
                    log(f"{ep.id} ({ep.vpc_id}) on {lst.address}:443")
                allow = sorted(a for a, c in self.callers.items() if self._admitted(c, ep))
                lst.set_allowlist(allow)
            self._write_endpoints()

    def _admitted(self, caller: Caller, ep: Endpoint) -> bool:
        try:
            return admitted(caller, ep)
        except Exception as e:  # a half-made resource in the fake: not admitted
            log(f"admission of {caller.name} to {ep.id}: {e!r}")
            return False

    def _write_endpoints(self) -> None:
        out = {i: {"address": a, "vpc": self.endpoints[i].vpc_id,
                   "allowed": list(self.listeners[i].allow) if i in self.listeners else []}
               for i, a in self.addr_of.items() if i in self.endpoints}
        path = os.path.join(self.dir, "netns", "endpoints.json")
        try:
            with open(path + ".tmp", "w") as f:
                json.dump(out, f, indent=1, sort_keys=True)
            os.replace(path + ".tmp", path)
        except OSError:
            pass

    # -- DNS -----------------------------------------------------------------------------------

    def resolve(self, caller_ip: str, name: str) -> str | None:
        self.sync()
        with self.lock:
            caller = self.callers.get(caller_ip)
            eps = list(self.endpoints.values())
            m = VPCE_NAME.match(name)
            if m:
                for ep in eps:
                    if ep.id == m.group(2) and ep.region == m.group(3):
                        return self.addr_of.get(ep.id)
                return None
            m = PRIVATE_NAME.match(name)
            if m:
                if caller is None or not caller.vpc_id:
                    return None
                for ep in eps:
                    if ep.vpc_id == caller.vpc_id and ep.region == m.group(2) and ep.private_dns:
                        return self.addr_of.get(ep.id)
                return None
            for ep in eps:
                if name in ep.dns_names:
                    return self.addr_of.get(ep.id)
        return None

    def serve_dns(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.dns_ip, 53))
        log(f"DNS on {self.dns_ip}:53")

        def answer(data: bytes, peer: tuple[str, int]) -> None:
            try:
                out = dns_answer(data, lambda n: self.resolve(peer[0], n))
                if out:
                    sock.sendto(out, peer)
            except Exception as e:
                log(f"DNS: {e!r}")

        while True:
            data, peer = sock.recvfrom(4096)
            threading.Thread(target=answer, args=(data, peer), daemon=True).start()

    def start(self) -> None:
        threading.Thread(target=self.serve_dns, daemon=True, name="dns").start()

        def loop() -> None:
            while True:
                try:
                    self.sync()
                except Exception as e:
                    log(f"sync: {e!r}")
                time.sleep(0.5)

        threading.Thread(target=loop, daemon=True, name="sync").start()


class Listener(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, plane: DataPlane, vpce: str, address: str) -> None:
        self.plane, self.vpce, self.address = plane, vpce, address
        self.allow: list[str] = []
        super().__init__((address, 443), Handler, bind_and_activate=False)
        attach_allowlist(self.socket, [])
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def set_allowlist(self, allow: list[str]) -> None:
        if allow != self.allow:
            attach_allowlist(self.socket, allow)
            self.allow = allow

    def close(self) -> None:
        threading.Thread(target=lambda: (self.shutdown(), self.server_close()), daemon=True).start()

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
        except OSError:
            pass
        if client_address[0] not in self.allow:
            # admitted by a stale filter: behave as the drop would have (say nothing)
            request.settimeout(300)
            try:
                while request.recv(4096):
                    pass
            except OSError:
                pass
            return
        request.settimeout(30)
        try:
            tls = self.plane.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        self.RequestHandlerClass(tls, client_address, self)


def _json(status: int, body: Any, error_type: str | None = None) -> tuple[int, dict[str, list[str]], bytes]:
    headers = {"Content-Type": ["application/json"]}
    if error_type:
        headers["x-amzn-ErrorType"] = [error_type]
    return status, headers, json.dumps(body).encode()


FORBIDDEN = (403, {"message": "Forbidden"}, "ForbiddenException")
MISSING_TOKEN = (403, {"message": "Missing Authentication Token"}, "MissingAuthenticationTokenException")
INTERNAL = (500, {"message": "Internal server error"}, "InternalServerErrorException")
BAD_GATEWAY = (502, {"message": "Internal server error"}, "InternalServerErrorException")
TIMED_OUT = (504, {"message": "Endpoint request timed out"}, "InternalServerErrorException")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Listener

    def log_message(self, fmt: str, *args: Any) -> None:
        log(f"{self.server.vpce} {self.client_address[0]} " + fmt % args)

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request_id = str(uuid.uuid4())
        try:
            status, headers, out = self.serve(body, request_id)
        except Exception as e:
            log(f"request failed: {e!r}")
            status, headers, out = _json(*INTERNAL)
        headers.setdefault("x-amzn-RequestId", [request_id])
        headers.setdefault("x-amz-apigw-id", [base64.b32encode(os.urandom(10)).decode()[:16]])
        self.send_response(status)
        for k, vs in headers.items():
            for v in vs:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

    def serve(self, body: bytes, request_id: str) -> tuple[int, dict[str, list[str]], bytes]:
        plane = self.server.plane
        with plane.lock:
            ep = plane.endpoints.get(self.server.vpce)
            caller = plane.callers.get(self.client_address[0])
        if ep is None:
            return _json(*FORBIDDEN)
        host = (self.headers.get("Host") or "").lower().split(":")[0]
        api_id = None
        via_vpce_name = False
        m = VPCE_NAME.match(host)
        if m:
            if m.group(2) != ep.id or m.group(3) != ep.region:
                return _json(*FORBIDDEN)
            api_id, via_vpce_name = m.group(1), True
        elif PRIVATE_NAME.match(host):
            m = PRIVATE_NAME.match(host)
            assert m
            if m.group(2) != ep.region:
                return _json(*FORBIDDEN)
            api_id = m.group(1)
        else:
            api_id = (self.headers.get("x-apigw-api-id") or "").strip() or None
        if not api_id:
            return _json(*FORBIDDEN)
        from moto.apigateway.models import apigateway_backends

        try:
            api = apigateway_backends[ep.account][ep.region].apis.get(api_id)
        except Exception:
            api = None
        if api is None:
            return _json(*FORBIDDEN)
        cfg = api.endpoint_configuration or {}
        if "PRIVATE" not in (cfg.get("types") or []):
            return _json(*FORBIDDEN)
        if via_vpce_name and ep.id not in (cfg.get("vpcEndpointIds") or []):
            return _json(*FORBIDDEN)

        url = urlsplit(self.path)
        raw_path = url.path or "/"
        parts = raw_path.split("/", 2)  # "", stage, rest
        stage_name = unquote(parts[1]) if len(parts) > 1 else ""
        stage = api.stages.get(stage_name) if stage_name else None
        if stage is None:
            return _json(*FORBIDDEN)
        deployment = api.deployments.get(stage.deployment_id)
        snap = getattr(deployment, "_papi_snapshot", None) if deployment is not None else None
        if snap is None:
            return _json(*FORBIDDEN)
        path = "/" + (parts[2] if len(parts) > 2 else "")
        method = self.command.upper()

        # The resource policy of the deployment.
        api_prefix = f"arn:aws:execute-api:{ep.region}:{ep.account}:{api.id}"
        resource = f"{api_prefix}/{stage_name}/{method}/{unquote(path)[1:]}"
        ctx = {"aws:SourceVpce": ep.id, "aws:SourceVpc": ep.vpc_id,
               "aws:SourceIp": caller.source_ip() if caller else self.client_address[0],
               "aws:VpcSourceIp": caller.source_ip() if caller else self.client_address[0]}
        verdict = "none"
        if snap.get("policy"):
            verdict = evaluate(snap["policy"], principal_service=None, action="execute-api:Invoke",
                               resource=resource, api_prefix=api_prefix, ctx=ctx)
        if verdict != "allow":
            masked = f"arn:aws:execute-api:{ep.region}:********{ep.account[-4:]}:{api.id}/{stage_name}/{method}/{unquote(path)[1:]}"
            msg = f"User: anonymous is not authorized to perform: execute-api:Invoke on resource: {masked}"
            if verdict == "deny":
                msg += " with an explicit deny"
            return _json(403, {"Message": msg}, "AccessDeniedException")

        # Routing on the deployment's resources.
        route = route_for(snap["resources"], unquote(path), method)
        if route is None:
            return _json(*MISSING_TOKEN)
        res, verb, path_params = route
        integ = res["methods"][verb].get("integration")
        if not integ or integ.get("type") != "AWS_PROXY":
            log(f"{api.id} {verb} {res['path']}: integration {integ and integ.get('type')} is not served")
            return _json(*INTERNAL)
        m2 = LAMBDA_URI.search(integ.get("uri") or "")
        if not m2:
            return _json(*INTERNAL)
        fn_arn = m2.group(1)
        from moto.awslambda.models import lambda_backends

        fn_region, fn_account = fn_arn.split(":")[3], fn_arn.split(":")[4]
        try:
            fn = lambda_backends[fn_account][fn_region].get_function(fn_arn)
        except Exception:
            fn = None
        if fn is None:
            log(f"{api.id}: function {fn_arn} not found")
            return _json(*INTERNAL)
        source_arn = f"{api_prefix}/{stage_name}/{method}/{res['path'][1:]}"
        if not lambda_permits(list(fn.policy.statements), source_arn, ep.account):
            log(f"{api.id}: {fn.function_name} does not allow apigateway.amazonaws.com for {source_arn}")
            return _json(*INTERNAL)

        event = proxy_event(self, body, api.id, ep, caller, stage_name, stage, res, verb, path,
                            path_params, url.query, request_id)
        timeout = (integ.get("timeoutInMillis") or DEFAULT_INTEGRATION_TIMEOUT_MS) / 1000.0
        try:
            out = plane.lambdas.invoke(fn, fn_region, event, timeout)
        except TimeoutError:
            return _json(*TIMED_OUT)
        except NotImplementedError as e:
            log(str(e))
            return _json(*INTERNAL)
        return map_answer(out)


def lambda_permits(statements: list[dict[str, Any]], source_arn: str, account: str) -> bool:
    """Does the function's resource policy let apigateway.amazonaws.com invoke it for
    `source_arn`? (Its statements name the function itself as Resource: not compared.)"""
    doc = {"Statement": [dict(st, Resource="*") for st in copy.deepcopy(statements)]}
    return evaluate(doc, principal_service="apigateway.amazonaws.com", action="lambda:InvokeFunction",
                    resource="*", api_prefix="",
                    ctx={"AWS:SourceArn": source_arn, "AWS:SourceAccount": account}) == "allow"


def route_for(resources: list[dict[str, Any]], path: str, method: str) -> tuple[dict[str, Any], str, dict[str, str]] | None:
    """The most specific resource for `path` (literal parts, {param}, a greedy {proxy+} last),
    and the method on it (`method`, else ANY)."""
    segs = [s for s in path.split("/") if s] if path != "/" else []
    best = None
    for res in resources:
        tmpl = [s for s in res["path"].split("/") if s]
        params: dict[str, str] = {}
        score = 0
        ok = True
        for i, t in enumerate(tmpl):
            if t.startswith("{") and t.endswith("+}"):
                if i >= len(segs):
                    ok = False
                else:
                    params[t[1:-2]] = "/".join(segs[i:])
                    score += 1
                break
            if i >= len(segs):
                ok = False
                break
            if t.startswith("{") and t.endswith("}"):
                params[t[1:-1]] = segs[i]
                score += 2
            elif t == segs[i]:
                score += 3
            else:
                ok = False
                break
        else:
            if len(tmpl) != len(segs):
                ok = False
        if not ok:
            continue
        verbs = res["methods"]
        verb = method if method in verbs else "ANY" if "ANY" in verbs else None
        if verb is None:
            continue
        if best is None or score > best[0]:
            best = (score, res, verb, params)
    if best is None:
        return None
    return best[1], best[2], best[3]


def proxy_event(h: Handler, body: bytes, api_id: str, ep: Endpoint, caller: Caller | None, stage_name: str,
                stage: Any, res: dict[str, Any], verb: str, path: str, path_params: dict[str, str],
                query: str, request_id: str) -> dict[str, Any]:
    headers: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for k, v in h.headers.items():
        multi.setdefault(k, []).append(v)
        headers[k] = v
    q: dict[str, str] = {}
    mq: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        mq.setdefault(k, []).append(v)
        q[k] = v
    try:
        text = body.decode("utf-8")
        b64 = False
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(body).decode(), True
    now = datetime.datetime.now(datetime.timezone.utc)
    src = caller.source_ip() if caller else h.client_address[0]
    return {
        "resource": res["path"], "path": path, "httpMethod": h.command.upper(),
        "headers": headers or None, "multiValueHeaders": multi or None,
        "queryStringParameters": q or None, "multiValueQueryStringParameters": mq or None,
        "pathParameters": path_params or None,
        "stageVariables": dict(getattr(stage, "variables", None) or {}) or None,
        "requestContext": {
            "resourceId": res["id"], "resourcePath": res["path"], "httpMethod": h.command.upper(),
            "extendedRequestId": base64.b32encode(os.urandom(10)).decode()[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage_name}{path}", "accountId": ep.account, "protocol": "HTTP/1.1",
            "stage": stage_name, "domainPrefix": (h.headers.get("Host") or "").split(".")[0],
            "requestTimeEpoch": int(now.timestamp() * 1000), "requestId": request_id,
            "identity": {"cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None,
                         "caller": None, "sourceIp": src, "principalOrgId": None, "accessKey": None,
                         "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None,
                         "userArn": None, "userAgent": h.headers.get("User-Agent"), "user": None,
                         "vpcId": ep.vpc_id, "vpceId": ep.id},
            "domainName": (h.headers.get("Host") or "").split(":")[0], "apiId": api_id,
        },
        "body": text if body else None, "isBase64Encoded": b64,
    }


ANSWER_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}


def map_answer(out: bytes) -> tuple[int, dict[str, list[str]], bytes]:
    """The Lambda proxy answer to the HTTP response; 502 when it is not one (a function error,
    a timed-out function, a wrong shape)."""
    try:
        doc = json.loads(out)
    except ValueError:
        return _json(*BAD_GATEWAY)
    if not isinstance(doc, dict) or not set(doc) <= ANSWER_KEYS:
        return _json(*BAD_GATEWAY)
    status = doc.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return _json(*BAD_GATEWAY)
    headers: dict[str, list[str]] = {}
    mv = doc.get("multiValueHeaders") or {}
    hv = doc.get("headers") or {}
    if not isinstance(mv, dict) or not isinstance(hv, dict):
        return _json(*BAD_GATEWAY)
    for k, vs in mv.items():
        if not isinstance(vs, list):
            return _json(*BAD_GATEWAY)
        headers.setdefault(k, []).extend(str(v) for v in vs)
    for k, v in hv.items():
        if k not in headers:
            headers[k] = [str(v)]
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = ["application/json"]
    for k in list(headers):
        if k.lower() in ("content-length", "transfer-encoding", "connection"):
            del headers[k]
    body = doc.get("body")
    if body is not None and not isinstance(body, str):
        return _json(*BAD_GATEWAY)
    raw = (body or "").encode()
    if doc.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body or "", validate=True)
        except ValueError:
            return _json(*BAD_GATEWAY)
    return status, headers, raw


_PLANE: DataPlane | None = None


def start(state_dir: str) -> DataPlane:
    global _PLANE
    _PLANE = DataPlane(state_dir)
    _PLANE.start()
    return _PLANE


def stop() -> None:
    if _PLANE is not None:
        _PLANE.lambdas.stop_all()
