"""Fault-injecting HTTP proxy between the operator's AWS SDK clients and the AWS fake (moto).

    python faultproxy.py --upstream http://127.0.0.1:MOTO_PORT [--host 127.0.0.1] [--port 0]
                         [--port-file FILE] [--seed N]

The operator gets AWS_ENDPOINT_URL=http://127.0.0.1:<proxy port>. Each request is identified
(service from the SigV4 credential scope, operation as the SDK names it, mutating or not), then
either answered with an injected fault or forwarded byte for byte (same method, path, headers
including Host and the signature, same body) to the upstream; moto's response is relayed as is.
Control API under /__faults/ on the same port (JSON): see README.md beside this file.

Python 3.11 standard library only (runs with the moto venv's python or any python3).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http.client import HTTPConnection, HTTPException
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

SERVICES = ("apigateway", "ec2", "lambda", "sts", "acm", "route53")
FAULTS = ("error5xx", "throttle", "latency", "drop_connection", "lose_response", "hang_after_forward")

# Requests without a body longer than this are not expected from the SDKs (Lambda zips are a few MB).
MAX_BODY = 256 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Identifying a call


def service_of(headers: Any, path: str) -> str:
    """The service from the SigV4 credential scope (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`),
    else from the path shape."""
    auth = headers.get("Authorization", "") or ""
    match = re.search(r"Credential=[^/,]+/[^/,]+/[^/,]+/([^/,]+)/aws4_request", auth)
    if match:
        return match.group(1)
    if path.startswith(("/restapis", "/tags/", "/account", "/domainnames", "/usageplans",
                        "/domainnameaccessassociations")):
        return "apigateway"
    if re.match(r"^/20\d\d-\d\d-\d\d/", path):
        return "lambda"
    return "unknown"


def form_action(body: bytes) -> str:
    for pair in body.split(b"&"):
        if pair.startswith(b"Action="):
            return unquote(pair[len(b"Action=") :].decode("utf-8", "replace"))
    return "Unknown"


# (method, path regex) -> operation, for the REST services. Path segments are URL-encoded IDs,
# names or ARNs (no '/' inside a segment).
SEG = r"[^/]+"
APIGATEWAY_ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"/restapis", "GetRestApis"),
    ("POST", r"/restapis", "CreateRestApi"),
    ("POST", r"/restapis/import", "ImportRestApi"),
    ("GET", rf"/restapis/{SEG}", "GetRestApi"),
    ("PATCH", rf"/restapis/{SEG}", "UpdateRestApi"),
    ("PUT", rf"/restapis/{SEG}", "PutRestApi"),
    ("DELETE", rf"/restapis/{SEG}", "DeleteRestApi"),
    ("GET", rf"/restapis/{SEG}/resources", "GetResources"),
    ("POST", rf"/restapis/{SEG}/resources/{SEG}", "CreateResource"),
    ("GET", rf"/restapis/{SEG}/resources/{SEG}", "GetResource"),
    ("PATCH", rf"/restapis/{SEG}/resources/{SEG}", "UpdateResource"),
    ("DELETE", rf"/restapis/{SEG}/resources/{SEG}", "DeleteResource"),
    ("PUT", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}", "PutMethod"),
    ("GET", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}", "GetMethod"),
    ("PATCH", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}", "UpdateMethod"),
    ("DELETE", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}", "DeleteMethod"),
    ("PUT", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/responses/{SEG}", "PutMethodResponse"),
    ("GET", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/responses/{SEG}", "GetMethodResponse"),
    ("PATCH", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/responses/{SEG}", "UpdateMethodResponse"),
    ("DELETE", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/responses/{SEG}", "DeleteMethodResponse"),
    ("PUT", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/integration", "PutIntegration"),
    ("GET", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/integration", "GetIntegration"),
    ("PATCH", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/integration", "UpdateIntegration"),
    ("DELETE", rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/integration", "DeleteIntegration"),
    (
        "PUT",
        rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/integration/responses/{SEG}",
        "PutIntegrationResponse",
    ),
    (
        "GET",
        rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/integration/responses/{SEG}",
        "GetIntegrationResponse",
    ),
    (
        "DELETE",
        rf"/restapis/{SEG}/resources/{SEG}/methods/{SEG}/integration/responses/{SEG}",
        "DeleteIntegrationResponse",
    ),
    ("GET", rf"/restapis/{SEG}/deployments", "GetDeployments"),
    ("POST", rf"/restapis/{SEG}/deployments", "CreateDeployment"),
    ("GET", rf"/restapis/{SEG}/deployments/{SEG}", "GetDeployment"),
    ("PATCH", rf"/restapis/{SEG}/deployments/{SEG}", "UpdateDeployment"),
    ("DELETE", rf"/restapis/{SEG}/deployments/{SEG}", "DeleteDeployment"),
    ("GET", rf"/restapis/{SEG}/stages", "GetStages"),
    ("POST", rf"/restapis/{SEG}/stages", "CreateStage"),
    ("GET", rf"/restapis/{SEG}/stages/{SEG}", "GetStage"),
    ("PATCH", rf"/restapis/{SEG}/stages/{SEG}", "UpdateStage"),
    ("DELETE", rf"/restapis/{SEG}/stages/{SEG}", "DeleteStage"),
    ("GET", rf"/tags/{SEG}", "GetTags"),
    ("PUT", rf"/tags/{SEG}", "TagResource"),
    ("DELETE", rf"/tags/{SEG}", "UntagResource"),
    # Private custom domain names (addressed by name and ?domainNameId=).
    ("GET", r"/domainnames", "GetDomainNames"),
    ("POST", r"/domainnames", "CreateDomainName"),
    ("GET", rf"/domainnames/{SEG}", "GetDomainName"),
    ("PATCH", rf"/domainnames/{SEG}", "UpdateDomainName"),
    ("DELETE", rf"/domainnames/{SEG}", "DeleteDomainName"),
    ("GET", rf"/domainnames/{SEG}/basepathmappings", "GetBasePathMappings"),
    ("POST", rf"/domainnames/{SEG}/basepathmappings", "CreateBasePathMapping"),
    ("GET", rf"/domainnames/{SEG}/basepathmappings/{SEG}", "GetBasePathMapping"),
    ("PATCH", rf"/domainnames/{SEG}/basepathmappings/{SEG}", "UpdateBasePathMapping"),
    ("DELETE", rf"/domainnames/{SEG}/basepathmappings/{SEG}", "DeleteBasePathMapping"),
    ("GET", r"/domainnameaccessassociations", "GetDomainNameAccessAssociations"),
    ("POST", r"/domainnameaccessassociations", "CreateDomainNameAccessAssociation"),
    ("DELETE", rf"/domainnameaccessassociations/{SEG}", "DeleteDomainNameAccessAssociation"),
]
ROUTE53_ROUTES: list[tuple[str, str, str]] = [
    ("GET", rf"/2013-04-01/hostedzone/{SEG}", "GetHostedZone"),
    ("GET", rf"/2013-04-01/hostedzone/{SEG}/rrset/?", "ListResourceRecordSets"),
    ("POST", rf"/2013-04-01/hostedzone/{SEG}/rrset/?", "ChangeResourceRecordSets"),
]
LAMBDA_ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"/2015-03-31/functions/?", "ListFunctions"),
    ("POST", r"/2015-03-31/functions/?", "CreateFunction"),
    ("GET", rf"/2015-03-31/functions/{SEG}", "GetFunction"),
    ("DELETE", rf"/2015-03-31/functions/{SEG}", "DeleteFunction"),
    ("GET", rf"/2015-03-31/functions/{SEG}/configuration", "GetFunctionConfiguration"),
    ("PUT", rf"/2015-03-31/functions/{SEG}/configuration", "UpdateFunctionConfiguration"),
    ("PUT", rf"/2015-03-31/functions/{SEG}/code", "UpdateFunctionCode"),
    ("GET", rf"/2015-03-31/functions/{SEG}/policy", "GetPolicy"),
    ("POST", rf"/2015-03-31/functions/{SEG}/policy", "AddPermission"),
    ("DELETE", rf"/2015-03-31/functions/{SEG}/policy/{SEG}", "RemovePermission"),
    ("POST", rf"/2015-03-31/functions/{SEG}/invocations", "Invoke"),
    ("GET", rf"/2015-03-31/functions/{SEG}/versions", "ListVersionsByFunction"),
    ("POST", rf"/2015-03-31/functions/{SEG}/versions", "PublishVersion"),
    ("GET", rf"/2017-03-31/tags/{SEG}", "ListTags"),
    ("POST", rf"/2017-03-31/tags/{SEG}", "TagResource"),
    ("DELETE", rf"/2017-03-31/tags/{SEG}", "UntagResource"),
    ("PUT", rf"/2017-10-31/functions/{SEG}/concurrency", "PutFunctionConcurrency"),
    ("GET", rf"/2019-09-30/functions/{SEG}/concurrency", "GetFunctionConcurrency"),
    ("DELETE", rf"/2017-10-31/functions/{SEG}/concurrency", "DeleteFunctionConcurrency"),
]
_COMPILED = {
    "apigateway": [(m, re.compile(f"^{p}$"), op) for m, p, op in APIGATEWAY_ROUTES],
    "lambda": [(m, re.compile(f"^{p}$"), op) for m, p, op in LAMBDA_ROUTES],
    "route53": [(m, re.compile(f"^{p}$"), op) for m, p, op in ROUTE53_ROUTES],
}

READ_VERBS = ("Describe", "Get", "List")


def identify(method: str, raw_path: str, headers: Any, body: bytes) -> tuple[str, str, bool]:
    """(service, operation, mutating) of one request."""
    path = urlsplit(raw_path).path
    service = service_of(headers, path)
    if service in ("ec2", "sts") or (service == "unknown" and method == "POST" and b"Action=" in body):
        operation = form_action(body)
        return service, operation, not operation.startswith(READ_VERBS)
    # JSON protocols (ACM): the operation is the target's last part.
    target = headers.get("X-Amz-Target", "") or ""
    if target:
        operation = target.rsplit(".", 1)[-1]
        return service, operation, not operation.startswith(READ_VERBS)
    for route_method, pattern, operation in _COMPILED.get(service, []):
        if method == route_method and pattern.match(path):
            return service, operation, method not in ("GET", "HEAD")
    return service, f"{method} {path}", method not in ("GET", "HEAD")


# ---------------------------------------------------------------------------------------------
# The responses each service really sends


def _request_id() -> str:
    return str(uuid.uuid4())


def throttle_response(service: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The throttling error exactly as each service returns it."""
    rid = _request_id()
    if service == "ec2":
        # EC2 (Query/XML): HTTP 503, <Response><Errors><Error><Code>RequestLimitExceeded.
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
            "<Message>Request limit exceeded.</Message></Error></Errors>"
            f"<RequestID>{rid}</RequestID></Response>"
        ).encode()
        return 503, [("Content-Type", "text/xml;charset=UTF-8")], body
    if service == "sts":
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
            f"<RequestId>{rid}</RequestId></ErrorResponse>"
        ).encode()
        return 400, [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)], body
    if service == "lambda":
        # Lambda: 429 TooManyRequestsException, Retry-After in seconds, Type and Reason in the body.
        body = json.dumps(
            {"Reason": "CallerRateLimitExceeded", "Type": "User", "message": "Rate exceeded"}
        ).encode()
        return (
            429,
            [
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", "TooManyRequestsException"),
                ("x-amzn-RequestId", rid),
                ("Retry-After", "1"),
            ],
            body,
        )
    # API Gateway management API: 429 with the error type header (and the coral suffix AWS adds).
    body = json.dumps({"message": "Too Many Requests"}).encode()
    return (
        429,
        [
            ("Content-Type", "application/json"),
            (
                "x-amzn-ErrorType",
                "TooManyRequestsException:http://internal.amazon.com/coral/com.amazonaws.backplane.controlplane/",
            ),
            ("x-amzn-RequestId", rid),
            ("Retry-After", "1"),
        ],
        body,
    )


def server_error_response(service: str, status: int) -> tuple[int, list[tuple[str, str]], bytes]:
    rid = _request_id()
    if service in ("ec2",):
        code = "Unavailable" if status == 503 else "InternalError"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code>"
            "<Message>An internal error has occurred (injected)</Message></Error></Errors>"
            f"<RequestID>{rid}</RequestID></Response>"
        ).encode()
        return status, [("Content-Type", "text/xml;charset=UTF-8")], body
    if service == "sts":
        code = "ServiceUnavailable" if status == 503 else "InternalFailure"
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>Receiver</Type><Code>{code}</Code><Message>injected</Message></Error>"
            f"<RequestId>{rid}</RequestId></ErrorResponse>"
        ).encode()
        return status, [("Content-Type", "text/xml")], body
    if service == "lambda":
        code = "ServiceException"
        body = json.dumps({"Type": "Service", "message": "injected service error"}).encode()
    else:
        code = "ServiceUnavailableException" if status == 503 else "InternalFailureException"
        body = json.dumps({"message": "injected service error"}).encode()
    return (
        status,
        [("Content-Type", "application/json"), ("x-amzn-ErrorType", code), ("x-amzn-RequestId", rid)],
        body,
    )


# ---------------------------------------------------------------------------------------------
# State: rules, quotas, latency, freeze, counters


class ControlError(Exception):
    pass


def _check_rule(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ControlError("a rule is a JSON object")
    rule = {
        "service": raw.get("service", "*"),
        "operation": raw.get("operation", "*"),
        "mutating": raw.get("mutating"),
        "fault": raw.get("fault"),
        "probability": raw.get("probability"),
        "schedule": raw.get("schedule"),
        "latency_ms": raw.get("latency_ms", 0),
        "status": raw.get("status", 500),
        "max": raw.get("max"),
    }
    unknown = set(raw) - set(rule)
    if unknown:
        raise ControlError(f"unknown rule fields: {sorted(unknown)}")
    if rule["service"] not in SERVICES + ("*",):
        raise ControlError(f"service must be one of {SERVICES} or *, not {rule['service']!r}")
    if rule["fault"] not in FAULTS:
        raise ControlError(f"fault must be one of {FAULTS}, not {rule['fault']!r}")
    if rule["mutating"] not in (True, False, None):
        raise ControlError("mutating is true, false or null")
    if rule["status"] not in (500, 503):
        raise ControlError("status is 500 or 503")
    if (rule["probability"] is None) == (rule["schedule"] is None):
        raise ControlError("give exactly one of probability and schedule")
    if rule["probability"] is not None and not (0 <= float(rule["probability"]) <= 1):
        raise ControlError("probability is in [0, 1]")
    if rule["schedule"] is not None:
        if not isinstance(rule["schedule"], list) or not all(
            isinstance(i, int) and i >= 1 for i in rule["schedule"]
        ):
            raise ControlError("schedule is a list of 1-based call indexes")
        rule["schedule"] = set(rule["schedule"])
    rule["calls"] = 0
    rule["injected"] = 0
    return rule


def _matches(selector: dict[str, Any], service: str, operation: str, mutating: bool) -> bool:
    return (
        selector["service"] in ("*", service)
        and selector["operation"] in ("*", operation)
        and (selector.get("mutating") is None or selector.get("mutating") == mutating)
    )


# The published control-plane quotas per account and region, as AWS enforces them (the same
# table as the operator's src/pacer/quotas.rs, which cites the pages): `{"preset": "aws", "scale": f}`.
# API Gateway: "API Gateway quotas for creating, deploying and managing an API"; Lambda: "API
# request rate quotas" (the 15/s control-plane total excludes GetFunction and GetPolicy); EC2:
# "Request throttling for the Amazon EC2 API", one bucket per API (listed for the APIs the
# operator calls; other EC2 APIs are not limited here).
def _aws_quotas() -> list[dict[str, Any]]:
    def b(service: str, operation: str, rate: float, burst: float) -> dict[str, Any]:
        return {"service": service, "operation": operation, "rate_per_s": rate, "burst": burst}

    apigw = [
        b("apigateway", "*", 10, 40),
        b("apigateway", "CreateRestApi", 1 / 3, 1),
        b("apigateway", "ImportRestApi", 1 / 3, 1),
        b("apigateway", "PutRestApi", 1, 1),
        b("apigateway", "CreateDeployment", 1 / 5, 1),
        b("apigateway", "DeleteRestApi", 1 / 30, 1),
        b("apigateway", "GetResources", 5 / 2, 5),
        b("apigateway", "CreateResource", 5, 5),
    ]
    lam = [b("lambda", "GetFunction", 100, 100), b("lambda", "GetPolicy", 15, 15)]
    # The control-plane total: every Lambda operation but those two (and Invoke).
    lam.append({**b("lambda", "*", 15, 15), "except": ["GetFunction", "GetPolicy", "Invoke"]})
    ec2 = [b("ec2", op, 20, 100) for op in (
        "DescribeVpcEndpoints", "DescribeSecurityGroups", "DescribeSubnets", "DescribeVpcs",
        "DescribeNetworkInterfaces")]
    ec2 += [b("ec2", op, 5, 50) for op in (
        "CreateSecurityGroup", "DeleteSecurityGroup", "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress",
        "DeleteTags")]
    ec2.append(b("ec2", "CreateTags", 10, 100))
    ec2 += [b("ec2", op, 0.3, 4) for op in ("CreateVpcEndpoint", "ModifyVpcEndpoint", "DeleteVpcEndpoints")]
    return apigw + lam + ec2


AWS_QUOTAS = _aws_quotas()


class Bucket:
    def __init__(self, service: str, operation: str, rate: float, burst: float,
                 exclude: tuple[str, ...] = ()) -> None:
        self.service, self.operation = service, operation
        self.exclude = exclude
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class State:
    def __init__(self, seed: int) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.seed = seed
        self.reset_locked()

    def reset_locked(self) -> None:
        self.rng = random.Random(self.seed)
        self.rules: list[dict[str, Any]] = []
        self.quotas: list[Bucket] = []
        self.quota_scale = 1.0
        self.latency_ms = 0
        self.freeze_k: int | None = None
        self.frozen = False
        self.generation = 0  # bumped by every release/reset: held requests compare it
        self.held = 0
        self.forwarded: dict[str, int] = {}
        self.injected: dict[str, dict[str, int]] = {}
        self.throttled_by_quota: dict[str, int] = {}
        self.mutating_forwarded = 0
        self.calls: list[dict[str, Any]] = []  # the last CALL_LOG calls, oldest first

    def record(self, service: str, operation: str, mutating: bool, outcome: str) -> None:
        self.calls.append(
            {"service": service, "operation": operation, "mutating": mutating, "outcome": outcome}
        )
        if len(self.calls) > CALL_LOG:
            del self.calls[: len(self.calls) - CALL_LOG]


CALL_LOG = 2000


# ---------------------------------------------------------------------------------------------
# The server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "papi-faultproxy"
    state: State  # set on the class by main()
    upstream: tuple[str, int]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        if os.environ.get("PAPI_FAULTPROXY_VERBOSE"):
            sys.stderr.write("faultproxy: " + (format % args) + "\n")

    # every method goes through one path
    def do_GET(self) -> None:
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def send_raw(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status: int, value: Any) -> None:
        self.send_raw(status, [("Content-Type", "application/json")], json.dumps(value).encode())

    def abort_connection(self) -> None:
        """Close the client's connection without a response (RST, as a dropped connection)."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def client_gone(self) -> bool:
        """Whether the client closed its side (e.g. was SIGKILLed) while we held its request."""
        try:
            self.connection.setblocking(False)
            try:
                data = self.connection.recv(1, socket.MSG_PEEK)
                return data == b""
            except BlockingIOError:
                return False
            finally:
                self.connection.setblocking(True)
        except OSError:
            return True

    def handle_any(self) -> None:
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        if self.path.startswith("/__faults/"):
            self.handle_control(body)
            return
        self.handle_aws(body)

    # ---- the control API

    def handle_control(self, body: bytes) -> None:
        state = self.state
        path = urlsplit(self.path).path
        try:
            value = json.loads(body) if body.strip() else None
        except ValueError:
            self.send_json(400, {"error": "body is not JSON"})
            return
        try:
            with state.lock:
                result = self.control_locked(self.command, path, value)
                state.changed.notify_all()
        except ControlError as error:
            self.send_json(400, {"error": str(error)})
            return
        if result is None:
            self.send_json(404, {"error": f"no control route {self.command} {path}"})
        else:
            self.send_json(200, result)

    def control_locked(self, method: str, path: str, value: Any) -> Any:
        state = self.state
        if (method, path) == ("PUT", "/__faults/rules"):
            if not isinstance(value, list):
                raise ControlError("rules: a JSON list of rules")
            state.rules = [_check_rule(rule) for rule in value]
            return {"rules": len(state.rules)}
        if (method, path) == ("PUT", "/__faults/seed"):
            seed = value.get("seed") if isinstance(value, dict) else value
            if not isinstance(seed, int):
                raise ControlError('seed: {"seed": n} or n')
            state.seed = seed
            state.rng = random.Random(seed)
            return {"seed": seed}
        if (method, path) == ("PUT", "/__faults/quotas"):
            if isinstance(value, list):
                value = {"buckets": value}
            if not isinstance(value, dict):
                raise ControlError('quotas: {"scale": f, "buckets": [...]} or a list of buckets')
            preset = value.get("preset")
            if preset is not None:
                if preset != "aws":
                    raise ControlError('the only preset is "aws"')
                value = {**value, "buckets": AWS_QUOTAS + list(value.get("buckets", []))}
            scale = float(value.get("scale", 1.0))
            if scale <= 0:
                raise ControlError("scale > 0")
            buckets = []
            for raw in value.get("buckets", []):
                service = raw.get("service", "*")
                if service not in SERVICES + ("*",):
                    raise ControlError(f"bucket service {service!r}")
                rate = float(raw["rate_per_s"]) * scale
                burst = float(raw.get("burst", 1))
                if rate <= 0 or burst < 1:
                    raise ControlError("rate_per_s > 0 and burst >= 1")
                exclude = raw.get("except", [])
                if not isinstance(exclude, list):
                    raise ControlError("bucket except: a list of operations")
                buckets.append(Bucket(service, raw.get("operation", "*"), rate, burst, tuple(exclude)))
            state.quotas, state.quota_scale = buckets, scale
            return {"buckets": len(buckets), "scale": scale}
        if (method, path) == ("PUT", "/__faults/latency"):
            latency = value.get("latency_ms") if isinstance(value, dict) else None
            if not isinstance(latency, (int, float)) or latency < 0:
                raise ControlError('latency: {"latency_ms": n}')
            state.latency_ms = latency
            return {"latency_ms": latency}
        if (method, path) == ("PUT", "/__faults/freeze_after_mutating"):
            k = value.get("k") if isinstance(value, dict) else None
            if not isinstance(k, int) or k < 1:
                raise ControlError('freeze_after_mutating: {"k": n}, n >= 1')
            # counted from now on
            state.freeze_k = state.mutating_forwarded + k
            state.frozen = False
            return {"freeze_at_mutating_call": state.freeze_k}
        if (method, path) == ("DELETE", "/__faults/freeze"):
            released = state.held
            state.freeze_k, state.frozen = None, False
            state.generation += 1
            return {"released": released}
        if (method, path) == ("GET", "/__faults/stats"):
            return self.stats_locked()
        if (method, path) == ("GET", "/__faults/calls"):
            return {"calls": list(state.calls)}
        if (method, path) == ("POST", "/__faults/reset"):
            released = state.held
            generation = state.generation
            state.reset_locked()
            state.generation = generation + 1
            state.held = released
            return {"reset": True, "released": released}
        return None

    def stats_locked(self) -> dict[str, Any]:
        state = self.state
        injected_total: dict[str, int] = {}
        for by_kind in state.injected.values():
            for kind, n in by_kind.items():
                injected_total[kind] = injected_total.get(kind, 0) + n
        return {
            "forwarded": dict(state.forwarded),
            "injected": {op: dict(kinds) for op, kinds in state.injected.items()},
            "injected_total": injected_total,
            "throttled_by_quota": dict(state.throttled_by_quota),
            "throttled_by_quota_total": sum(state.throttled_by_quota.values()),
            "mutating_forwarded": state.mutating_forwarded,
            "forwarded_total": sum(state.forwarded.values()),
            "frozen": state.frozen,
            "freeze_at_mutating_call": state.freeze_k,
            "held": state.held,
            "latency_ms": state.latency_ms,
            "rules": [
                {"service": r["service"], "operation": r["operation"], "fault": r["fault"], "calls": r["calls"],
                 "injected": r["injected"]}
                for r in state.rules
            ],
            "seed": state.seed,
        }

    # ---- AWS calls

    def handle_aws(self, body: bytes) -> None:
        state = self.state
        service, operation, mutating = identify(self.command, self.path, self.headers, body)
        key = f"{service}:{operation}"
        fault: dict[str, Any] | None = None
        with state.lock:
            # while frozen, mutating calls wait before they reach AWS (released, or dropped when
            # their client died meanwhile)
            if mutating and state.frozen:
                if not self.hold_locked(state.generation):
                    state.record(service, operation, mutating, "dropped_after_freeze")
                    return
            for bucket in state.quotas:
                if _matches(
                    {"service": bucket.service, "operation": bucket.operation}, service, operation, mutating
                ) and operation not in bucket.exclude and not bucket.take(time.monotonic()):
                    state.throttled_by_quota[key] = state.throttled_by_quota.get(key, 0) + 1
                    state.record(service, operation, mutating, "throttled_by_quota")
                    fault = {"fault": "quota"}
                    break
            if fault is None:
                for rule in state.rules:
                    if not _matches(rule, service, operation, mutating):
                        continue
                    rule["calls"] += 1
                    if fault is not None:
                        continue  # later rules still count the call, as documented
                    if rule["max"] is not None and rule["injected"] >= rule["max"]:
                        continue
                    if rule["schedule"] is not None:
                        fires = rule["calls"] in rule["schedule"]
                    else:
                        fires = state.rng.random() < float(rule["probability"])
                    if fires:
                        rule["injected"] += 1
                        fault = rule
                        by_kind = state.injected.setdefault(key, {})
                        by_kind[rule["fault"]] = by_kind.get(rule["fault"], 0) + 1
                        state.record(service, operation, mutating, rule["fault"])
            latency_ms = state.latency_ms
        kind = fault["fault"] if fault else None
        if kind == "quota":
            self.send_raw(*throttle_response(service))
            return
        if kind == "throttle":
            self.send_raw(*throttle_response(service))
            return
        if kind == "error5xx":
            self.send_raw(*server_error_response(service, int(fault["status"])))
            return
        if kind == "drop_connection":
            self.abort_connection()
            return
        if kind == "latency":
            latency_ms += fault["latency_ms"]
        if latency_ms:
            time.sleep(latency_ms / 1000)
        try:
            response = self.forward(body)
        except (OSError, HTTPException) as error:
            sys.stderr.write(f"faultproxy: upstream failed for {key}: {error}\n")
            with state.lock:
                state.record(service, operation, mutating, "upstream_error")
            self.abort_connection()
            return
        with state.lock:
            state.forwarded[key] = state.forwarded.get(key, 0) + 1
            if kind is None or kind == "latency":
                state.record(service, operation, mutating, "forwarded" if kind is None else "latency")
            freeze_here = False
            if mutating and 200 <= response[0] < 300:
                state.mutating_forwarded += 1
                if state.freeze_k is not None and state.mutating_forwarded == state.freeze_k:
                    state.frozen = True
                    freeze_here = True
                    state.changed.notify_all()
            if freeze_here:
                generation = state.generation
                self.hold_locked(generation)
            if kind == "hang_after_forward":
                self.hold_locked(state.generation)
        if kind in ("lose_response", "hang_after_forward"):
            self.abort_connection()
            return
        try:
            self.send_raw(*response)
        except OSError:
            self.close_connection = True

    def hold_locked(self, generation: int) -> bool:
        """Wait (state lock held, released while waiting) until a release or reset; True when the
        client is still connected."""
        state = self.state
        state.held += 1
        try:
            while state.generation == generation:
                state.changed.wait(timeout=0.5)
                if self.client_gone():
                    return False
            return not self.client_gone()
        finally:
            state.held -= 1

    def forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The request to the upstream as it came (same path and headers: the SigV4 signature covers
        Host and the signed headers, so nothing is rewritten), its response read completely."""
        connection: HTTPConnection | None = getattr(self, "upstream_connection", None)
        for attempt in (1, 2):
            if connection is None:
                connection = HTTPConnection(*self.upstream, timeout=300)
                self.upstream_connection = connection
            try:
                connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() in ("expect", "transfer-encoding", "content-length", "connection"):
                        continue
                    connection.putheader(name, value)
                if body or self.command in ("POST", "PUT", "PATCH"):
                    connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body if body else None)
                upstream_response = connection.getresponse()
                data = upstream_response.read()
                if upstream_response.will_close:
                    connection.close()
                    self.upstream_connection = None
                return upstream_response.status, list(upstream_response.getheaders()), data
            except (OSError, HTTPException):
                connection.close()
                connection = None
                self.upstream_connection = None
                # a kept-alive upstream connection may have been closed by moto meanwhile: once more
                if attempt == 2:
                    raise
        raise OSError("unreachable")

    def finish(self) -> None:
        connection = getattr(self, "upstream_connection", None)
        if connection is not None:
            connection.close()
        try:
            super().finish()
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away mid-response (e.g. a SIGKILLed operator) is normal here
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, BrokenPipeError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("PAPI_FAULTPROXY_UPSTREAM"), required=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.upstream:
        parser.error("--upstream URL (the AWS fake) is required")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the proxy listens on loopback only")
    upstream = urlsplit(args.upstream)
    Handler.upstream = (upstream.hostname or "127.0.0.1", upstream.port or 80)
    Handler.state = State(args.seed)
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    sys.stderr.write(f"faultproxy: 127.0.0.1:{port} -> {args.upstream}\n")
    sys.stderr.flush()
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
