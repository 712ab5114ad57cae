"""Corrections for API Gateway private custom domain names, and the ACM and Route 53 calls they
need (see testbed/moto/README.md, "Corrections", rows D1-D7).

server.py imports this module and applies CORRECTIONS after its own (they are registered the
same way: one function each, decorated with @correction, whose docstring says what AWS does and
what moto 5.2.5 does instead, and which test in tests/parts/moto_fidelity_domains.rs checks it).
Every moto name a correction wraps or reads is looked up with `_moto(...)` first, so server.py
fails at start-up, naming it, if moto has moved it.

Knobs (environment of server.py):

  PAPI_MOTO_ACM_RECORD_SECONDS (1)  a requested certificate's DNS validation record
                                    (DomainValidationOptions[].ResourceRecord) appears this
                                    long after RequestCertificate
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import threading
import time
from typing import Any, Callable
from urllib.parse import unquote

CORRECTIONS: list[Callable[[], None]] = []
_LOCK = threading.RLock()  # guards the state this module keeps on moto's backends


def correction(fn: Callable[[], None]) -> Callable[[], None]:
    CORRECTIONS.append(fn)
    return fn


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        print(f"domains.py: ignoring {name}={raw!r} (not a number)", file=sys.stderr)
        return default


ACM_RECORD_SECONDS = _env_seconds("PAPI_MOTO_ACM_RECORD_SECONDS", 1)


def _moto(owner: Any, *names: str) -> None:
    """Fail loudly (at start-up) if moto no longer has what a correction wraps or reads."""
    import moto

    for name in names:
        if not hasattr(owner, name):
            raise RuntimeError(
                f"domains.py: moto {moto.__version__} has no {getattr(owner, '__name__', owner)}.{name}: "
                "a correction wraps it; re-check the corrections against this moto (README, 'Files and versions')"
            )


def _page(items: list[Any], key: Callable[[Any], str], position: str | None, limit: Any,
          default: int = 25, maximum: int = 500) -> tuple[list[Any], str | None]:
    """API Gateway paging: at most `limit` items (default 25, max 500) and a `position` token
    naming the last key returned (as server.py's `paging` correction does for GetRestApis)."""
    try:
        n = int(limit) if limit not in (None, "") else default
    except ValueError:
        n = default
    n = max(1, min(n, maximum))
    items = sorted(items, key=key)
    if position:
        try:
            after = base64.urlsafe_b64decode(position.encode() + b"==").decode()
        except Exception:
            after = "\uffff"
        items = [i for i in items if key(i) > after]
    chunk = items[:n]
    token = None
    if len(items) > n:
        token = base64.urlsafe_b64encode(key(chunk[-1]).encode()).decode().rstrip("=")
    return chunk, token


# --------------------------------------------------------------------------------------------
# API Gateway: private custom domain names
# --------------------------------------------------------------------------------------------


def _apigw_errors() -> tuple[Any, Any, Any]:
    from moto.apigateway.exceptions import BadRequestException, ConflictException, NotFoundException

    class NotFound(NotFoundException):
        code = 404

    return BadRequestException, ConflictException, NotFound


def _random_id(n: int = 10) -> str:
    from moto.moto_api._internal import mock_random

    return "".join(mock_random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def domain_policy_text(policy: str, region: str, account: str, name: str, domain_id: str) -> str:
    """The execute-api policy of a private domain name as AWS returns it: plain JSON (not
    escaped inside the string as a REST API's policy is), minified, key order kept, with the
    `execute-api:` shorthand in Resource/NotResource expanded to the domain name's execute-api
    ARN `arn:aws:execute-api:<region>:<account>:/domainnames/<name>+<id>` (`execute-api:/*` is
    that ARN itself) and a one-element Resource list written as a string (AWS CLI reference,
    create-domain-name / get-domain-name, "To create a private custom domain name")."""
    try:
        doc = json.loads(policy)
    except (TypeError, ValueError):
        return policy
    arn = f"arn:aws:execute-api:{region}:{account}:/domainnames/{name}+{domain_id}"

    def expand_one(res: Any) -> Any:
        if isinstance(res, str) and res.startswith("execute-api:"):
            rest = res[len("execute-api:"):]
            return arn if rest in ("", "*", "/*") else arn + rest
        return res

    def expand(res: Any) -> Any:
        if isinstance(res, list):
            out = [expand_one(r) for r in res]
            return out[0] if len(out) == 1 else out
        return expand_one(res)

    statements = doc.get("Statement") if isinstance(doc, dict) else None
    for st in (statements if isinstance(statements, list) else [statements]):
        if isinstance(st, dict):
            for key in ("Resource", "NotResource"):
                if key in st:
                    st[key] = expand(st[key])
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


class PrivateDomain:
    def __init__(self, backend: Any, name: str, certificate_arn: str, policy: str | None,
                 tags: dict[str, str] | None) -> None:
        existing = _private_domains(backend)
        domain_id = _random_id()
        while domain_id in existing:
            domain_id = _random_id()
        self.name = name
        self.id = domain_id
        self.region = backend.region_name
        self.account = backend.account_id
        self.arn = f"arn:aws:apigateway:{self.region}:{self.account}:/domainnames/{name}+{domain_id}"
        self.certificate_arn = certificate_arn
        self.certificate_upload_date = int(time.time())
        self.policy = policy
        self.tags = dict(tags or {})
        self.mappings: dict[str, dict[str, Any]] = {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "domainName": self.name,
            "domainNameId": self.id,
            "domainNameArn": self.arn,
            "certificateArn": self.certificate_arn,
            "certificateUploadDate": self.certificate_upload_date,
            "endpointConfiguration": {"types": ["PRIVATE"], "ipAddressType": "dualstack"},
            "domainNameStatus": "AVAILABLE",
            "securityPolicy": "TLS_1_2",
            "routingMode": "BASE_PATH_MAPPING_ONLY",
        }
        if self.policy:
            out["policy"] = domain_policy_text(self.policy, self.region, self.account, self.name, self.id)
        if self.tags:
            out["tags"] = dict(self.tags)
        return out


def _private_domains(backend: Any) -> dict[str, PrivateDomain]:
    return backend.__dict__.setdefault("_papi_private_domains", {})


def _associations(backend: Any) -> dict[str, dict[str, Any]]:
    return backend.__dict__.setdefault("_papi_domain_access_associations", {})


def _qs(resp: Any, name: str) -> str | None:
    v = resp.querystring.get(name)
    if isinstance(v, list):
        return v[0] if v else None
    return v


def _path_domain(resp: Any) -> str:
    return unquote(resp.path.split("/")[2])


def _find_private(resp: Any, name: str, domain_id: str) -> PrivateDomain:
    _, _, NotFound = _apigw_errors()
    d = _private_domains(resp.backend).get(domain_id)
    if d is None or d.name != name:
        raise NotFound("Invalid domain name identifier specified")
    return d


def _check_certificate(backend: Any, name: str, certificate_arn: str | None) -> None:
    """AWS: a private domain name needs an ACM certificate of this account and region that is
    ISSUED and covers the name (a wildcard covers one label)."""
    BadRequest, _, _ = _apigw_errors()
    if not certificate_arn:
        raise BadRequest("A certificate was not provided for the endpoint type PRIVATE.")
    from moto.acm.models import acm_backends

    try:
        cert = acm_backends[backend.account_id][backend.region_name].get_certificate(certificate_arn)
    except Exception:
        raise BadRequest(f"Certificate {certificate_arn} not found in account {backend.account_id}.")
    if cert.status != "ISSUED":
        raise BadRequest(f"Certificate {certificate_arn} in account {backend.account_id} not yet issued")
    names = {n.lower() for n in ([cert.common_name] if cert.common_name else []) + list(cert.sans)}
    want = name.lower()
    covered = want in names or any(
        n.startswith("*.") and want.count(".") == n.count(".") and want.endswith(n[1:]) for n in names
    )
    if not covered:
        raise BadRequest(f"The domain name {name} is not covered by the certificate {certificate_arn}.")


def _validate_domain_policy(policy: Any) -> None:
    BadRequest, _, _ = _apigw_errors()
    if policy in (None, ""):
        return
    try:
        doc = json.loads(policy)
        if not isinstance(doc, dict):
            raise ValueError
    except (TypeError, ValueError):
        raise BadRequest(
            "Invalid policy document. Please check the policy syntax and ensure that Principals are valid."
        )


def _validate_tags(tags: Any) -> None:
    BadRequest, _, _ = _apigw_errors()
    for k in (tags or {}):
        if str(k).lower().startswith("aws:"):
            raise BadRequest("Tag keys cannot start with 'aws:'")


@correction
def apigw_private_domain_names() -> None:
    """CreateDomainName/GetDomainName/GetDomainNames/UpdateDomainName/DeleteDomainName for
    private custom domain names (endpointConfiguration.types=[PRIVATE]).

    AWS (API Gateway developer guide, "Custom domain names for private APIs", and the API
    reference): a private domain name gets a `domainNameId` (10 lowercase letters/digits, e.g.
    `6wnnm3i4kd`) and `domainNameArn` `arn:aws:apigateway:<region>:<account>:/domainnames/<name>+<id>`;
    names need not be unique, even in one account (`private.example.com+abcd1234` and
    `private.example.com+xyz000` side by side); every call on it names the id (without
    `domainNameId` the call addresses the *public* domain name of that name); the answer carries
    status AVAILABLE, security policy TLS_1_2 (the only one), the endpoint configuration
    (PRIVATE, dualstack) and the execute-api `policy`, returned as plain minified JSON with
    `execute-api:` expanded (see domain_policy_text). The ACM certificate must exist, be ISSUED
    and cover the name. UpdateDomainName takes `replace /policy` and `replace /certificateArn`.
    DeleteDomainName also removes its base path mappings (tutorial, "Clean up"); while domain name
    access associations exist it is refused (409 ConflictException): the documented order is
    associations first (our reading; the error is not documented). Gone: 404 NotFoundException.
    GetDomainNames pages (limit default 25, max 500, `position`), `resourceOwner=SELF` lists this
    account's names. moto 5.2.5: no domainNameId, ARN or policy; one domain per name (a second
    CreateDomainName silently replaces the first); `domainNameId` ignored; no certificate check;
    no UpdateDomainName; no paging. Tests: apigw_private_domain_name_has_id_arn_and_policy,
    apigw_private_domain_names_may_share_a_name, apigw_delete_private_domain_name."""
    from moto.apigateway import exceptions, models, responses

    R = responses.APIGatewayResponse
    _moto(R, "create_domain_name", "get_domain_name", "get_domain_names", "delete_domain_name",
          "_get_param", "backend")
    _moto(models.APIGatewayBackend, "get_domain_names", "get_domain_name")
    _moto(exceptions, "DomainNameNotFound")
    BadRequest, Conflict, NotFound = _apigw_errors()

    orig_create = R.create_domain_name
    orig_get = R.get_domain_name
    orig_delete = R.delete_domain_name

    def is_private(cfg: Any) -> bool:
        return isinstance(cfg, dict) and "PRIVATE" in (cfg.get("types") or [])

    def create_domain_name(self: Any) -> Any:
        cfg = self._get_param("endpointConfiguration")
        if not is_private(cfg):
            return orig_create(self)
        name = self._get_param("domainName") or ""
        if not name:
            raise BadRequest("Domain name must be specified")
        if name.startswith("*"):
            raise BadRequest("Wildcard custom domain names are not supported for private custom domain names.")
        if len(cfg.get("types") or []) != 1:
            raise BadRequest("Cannot create a domain name with multiple endpoint types.")
        policy_value = self._get_param("securityPolicy")
        if policy_value not in (None, "", "TLS_1_2"):
            raise BadRequest("Private custom domain names only support the security policy TLS_1_2.")
        if cfg.get("ipAddressType") not in (None, "dualstack"):
            raise BadRequest("Private custom domain names only support the IP address type dualstack.")
        policy = self._get_param("policy")
        _validate_domain_policy(policy)
        tags = self._get_param("tags") or {}
        _validate_tags(tags)
        with _LOCK:
            _check_certificate(self.backend, name, self._get_param("certificateArn"))
            d = PrivateDomain(self.backend, name, self._get_param("certificateArn"), policy, tags)
            _private_domains(self.backend)[d.id] = d
        return 201, {"status": 201}, json.dumps(d.to_json())

    def get_domain_name(self: Any) -> Any:
        domain_id = _qs(self, "domainNameId")
        if not domain_id:
            return orig_get(self)
        return json.dumps(_find_private(self, _path_domain(self), domain_id).to_json())

    def get_domain_names(self: Any) -> Any:
        owner = _qs(self, "resourceOwner") or "SELF"
        items: list[dict[str, Any]] = []
        if owner == "SELF":
            items = [d.to_json() for d in self.backend.get_domain_names()]
            items += [d.to_json() for d in list(_private_domains(self.backend).values())]
        elif owner != "OTHER_ACCOUNTS":
            raise BadRequest(f"Invalid resourceOwner {owner}")
        chunk, pos = _page(items, lambda d: f"{d['domainName']}+{d.get('domainNameId', '')}",
                           _qs(self, "position"), _qs(self, "limit"))
        out: dict[str, Any] = {"item": chunk}
        if pos:
            out["position"] = pos
        return json.dumps(out)

    def update_domain_name(self: Any) -> Any:
        domain_id = _qs(self, "domainNameId")
        name = _path_domain(self)
        if not domain_id:
            # public domain names: moto has no UpdateDomainName at all; answer as AWS does for
            # a name that does not exist, and refuse the rest (not corrected here).
            self.backend.get_domain_name(name)
            raise BadRequest("UpdateDomainName of a public domain name is not supported by the test bed")
        ops = self._get_param("patchOperations") or []
        with _LOCK:
            d = _find_private(self, name, domain_id)
            policy, cert = d.policy, d.certificate_arn
            for op in ops:
                verb, path, value = op.get("op"), op.get("path"), op.get("value")
                if path == "/policy" and verb == "replace":
                    _validate_domain_policy(value)
                    policy = value or None
                elif path == "/certificateArn" and verb == "replace":
                    _check_certificate(self.backend, d.name, value)
                    cert = value
                else:
                    raise BadRequest(f"Invalid patch path '{path}' specified for op '{verb}'. "
                                     "Must be one of: [/policy, /certificateArn]")
            if cert != d.certificate_arn:
                d.certificate_upload_date = int(time.time())
            d.policy, d.certificate_arn = policy, cert
        return 200, {"status": 200}, json.dumps(d.to_json())

    def delete_domain_name(self: Any) -> Any:
        domain_id = _qs(self, "domainNameId")
        if not domain_id:
            return orig_delete(self)
        with _LOCK:
            d = _find_private(self, _path_domain(self), domain_id)
            held = [a for a in _associations(self.backend).values() if a["domainNameArn"] == d.arn]
            if held:
                raise Conflict(
                    f"Domain name {d.arn} has {len(held)} domain name access association(s): "
                    "delete them before the domain name"
                )
            _private_domains(self.backend).pop(d.id, None)
        return 202, {"status": 202}, ""

    R.create_domain_name = create_domain_name
    R.get_domain_name = get_domain_name
    R.get_domain_names = get_domain_names
    R.update_domain_name = update_domain_name
    R.delete_domain_name = delete_domain_name


@correction
def apigw_domain_name_access_associations() -> None:
    """CreateDomainNameAccessAssociation / GetDomainNameAccessAssociations /
    DeleteDomainNameAccessAssociation.

    AWS (API reference; developer guide, "Tasks of API providers and API consumers"): an
    association of a VPC endpoint (`accessAssociationSourceType=VPCE`, `accessAssociationSource=vpce-…`)
    with a private domain name ARN answers 201 with `domainNameAccessAssociationArn`
    `arn:aws:apigateway:<region>:<account>:/domainnameaccessassociations/domainname/<name>+<id>/vpcesource/<vpce>`
    and its tags; the same endpoint with the same domain name again: 409 ConflictException; a
    domain name ARN or VPC endpoint that does not exist: 400 BadRequestException (the operation's
    only errors are BadRequest, Conflict, LimitExceeded, Unauthorized, TooManyRequests — it has no
    NotFound). GetDomainNameAccessAssociations pages like the other listings (`resourceOwner=SELF`:
    the ones this account made; `OTHER_ACCOUNTS`: others' associations with our names, none
    here). Deleting one that is gone: 404 NotFoundException. moto 5.2.5: none of these exist (the
    requests answer 404 with an HTML page). Test: apigw_domain_name_access_associations."""
    from moto.apigateway import responses, urls
    from moto.ec2.models import ec2_backends

    R = responses.APIGatewayResponse
    _moto(urls, "url_paths")
    _moto(R, "dispatch", "_get_param", "backend")
    BadRequest, Conflict, NotFound = _apigw_errors()
    urls.url_paths["{0}/domainnameaccessassociations$"] = R.dispatch
    urls.url_paths["{0}/domainnameaccessassociations/(?P<domain_name_access_association_arn>.+)$"] = R.dispatch

    arn_re = re.compile(r"^arn:aws[a-z-]*:apigateway:(?P<region>[^:]+):(?P<account>\d{12}):/domainnames/(?P<name>[^+/]+)\+(?P<id>[a-z0-9]+)$")

    def create(self: Any) -> Any:
        domain_arn = self._get_param("domainNameArn") or ""
        source_type = self._get_param("accessAssociationSourceType")
        source = self._get_param("accessAssociationSource") or ""
        tags = self._get_param("tags") or {}
        _validate_tags(tags)
        if source_type != "VPCE":
            raise BadRequest(f"Invalid access association source type {source_type}; must be VPCE")
        m = arn_re.match(domain_arn)
        with _LOCK:
            d = _private_domains(self.backend).get(m.group("id")) if m else None
            if d is None or d.arn != domain_arn:
                raise BadRequest(f"Invalid domain name ARN specified: {domain_arn}")
            ec2 = ec2_backends[self.backend.account_id][self.backend.region_name]
            ep = ec2.vpc_end_points.get(source)
            if ep is None or ep.state in ("deleting", "deleted"):
                raise BadRequest(f"Invalid VPC endpoint specified: {source} does not exist")
            if not str(ep.service_name).endswith(".execute-api") or (ep.vpc_endpoint_type or "").lower() != "interface":
                raise BadRequest(f"VPC endpoint {source} is not an execute-api interface endpoint")
            arn = (f"arn:aws:apigateway:{self.backend.region_name}:{self.backend.account_id}:"
                   f"/domainnameaccessassociations/domainname/{d.name}+{d.id}/vpcesource/{source}")
            if arn in _associations(self.backend):
                raise Conflict(f"Domain name access association already exists: {arn}")
            a = {"domainNameAccessAssociationArn": arn, "domainNameArn": d.arn,
                 "accessAssociationSourceType": "VPCE", "accessAssociationSource": source,
                 "tags": dict(tags)}
            _associations(self.backend)[arn] = a
        return 201, {"status": 201}, json.dumps(_assoc_json(a))

    def get_all(self: Any) -> Any:
        owner = _qs(self, "resourceOwner") or "SELF"
        items = [_assoc_json(a) for a in list(_associations(self.backend).values())] if owner == "SELF" else []
        chunk, pos = _page(items, lambda a: a["domainNameAccessAssociationArn"], _qs(self, "position"), _qs(self, "limit"))
        out: dict[str, Any] = {"item": chunk}
        if pos:
            out["position"] = pos
        return json.dumps(out)

    def delete(self: Any) -> Any:
        arn = unquote(self.path.split("/domainnameaccessassociations/", 1)[1])
        with _LOCK:
            if _associations(self.backend).pop(arn, None) is None:
                raise NotFound("Invalid domain name access association identifier specified")
        return 202, {"status": 202}, ""

    R.create_domain_name_access_association = create
    R.get_domain_name_access_associations = get_all
    R.delete_domain_name_access_association = delete


def _assoc_json(a: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in a.items() if k != "tags"}
    if a.get("tags"):
        out["tags"] = dict(a["tags"])
    return out


@correction
def apigw_private_base_path_mappings() -> None:
    """Base path mappings of a private domain name (CreateBasePathMapping, GetBasePathMappings,
    GetBasePathMapping, UpdateBasePathMapping, DeleteBasePathMapping with `domainNameId`).

    AWS (API reference, each operation's `domainNameId` "Required for private custom domain
    names"; developer guide, "Custom domain names for private APIs"): the mappings belong to the
    private domain name the id names, never to a public domain name of the same name; the empty
    base path is `(none)`; a second mapping of a base path (also `(none)`): 409 ConflictException
    "Base path already exists for this domain name"; the REST API must exist (400
    BadRequestException "Invalid REST API identifier specified") and be PRIVATE ("You can't send
    traffic from a private custom domain name to a public API"); the stage must exist (400
    "Invalid stage identifier specified"); multi-level base paths (`a/b`) are refused; gone: 404.
    UpdateBasePathMapping replaces `/stage`, `/restapiId` and `/basePath` with the same checks.
    While a private API is mapped to a private domain name its endpoint type can't change
    (UpdateRestApi `/endpointConfiguration/types/…`: 400). moto 5.2.5: ignores `domainNameId`
    (the mappings of every domain name of that name are one set, shared with the public one),
    allows any number of `(none)` mappings, maps public APIs.
    Test: apigw_private_base_path_mappings."""
    from moto.apigateway import models, responses

    R = responses.APIGatewayResponse
    _moto(R, "create_base_path_mapping", "get_base_path_mappings", "get_base_path_mapping",
          "update_base_path_mapping", "delete_base_path_mapping")
    _moto(models.APIGatewayBackend, "update_rest_api")
    BadRequest, Conflict, NotFound = _apigw_errors()
    originals = {n: getattr(R, n) for n in ("create_base_path_mapping", "get_base_path_mappings",
                                             "get_base_path_mapping", "update_base_path_mapping",
                                             "delete_base_path_mapping")}

    def private_domain(self: Any) -> PrivateDomain | None:
        domain_id = _qs(self, "domainNameId")
        return _find_private(self, _path_domain(self), domain_id) if domain_id else None

    def check_target(backend: Any, api_id: Any, stage: Any) -> None:
        api = backend.apis.get(api_id) if api_id else None
        if api is None:
            raise BadRequest("Invalid REST API identifier specified")
        if "PRIVATE" not in ((api.endpoint_configuration or {}).get("types") or []):
            raise BadRequest("Only private REST APIs can be mapped to a private custom domain name.")
        if stage not in (None, "", "(none)") and stage not in api.stages:
            raise BadRequest("Invalid stage identifier specified")

    def normal_base_path(bp: Any) -> str:
        bp = unquote(bp or "")
        if bp in ("", "(none)"):
            return "(none)"
        if "/" in bp:
            raise BadRequest("Multi-level base path mappings are not supported for private custom domain names.")
        return bp

    def mapping_json(bp: str, m: dict[str, Any]) -> dict[str, Any]:
        out = {"basePath": bp, "restApiId": m["restApiId"]}
        if m.get("stage"):
            out["stage"] = m["stage"]
        return out

    def path_base_path(self: Any) -> str:
        return unquote(self.path.split("/")[4])

    def create(self: Any) -> Any:
        d = private_domain(self)
        if d is None:
            return originals["create_base_path_mapping"](self)
        bp = normal_base_path(self._get_param("basePath"))
        api_id, stage = self._get_param("restApiId"), self._get_param("stage")
        with _LOCK:
            check_target(self.backend, api_id, stage)
            if bp in d.mappings:
                raise Conflict("Base path already exists for this domain name")
            d.mappings[bp] = {"restApiId": api_id, "stage": stage if stage not in ("", "(none)") else None}
        return 201, {"status": 201}, json.dumps(mapping_json(bp, d.mappings[bp]))

    def get_all(self: Any) -> Any:
        d = private_domain(self)
        if d is None:
            return originals["get_base_path_mappings"](self)
        items = [mapping_json(bp, m) for bp, m in list(d.mappings.items())]
        chunk, pos = _page(items, lambda m: m["basePath"], _qs(self, "position"), _qs(self, "limit"))
        out: dict[str, Any] = {"item": chunk}
        if pos:
            out["position"] = pos
        return json.dumps(out)

    def get_one(self: Any) -> Any:
        d = private_domain(self)
        if d is None:
            return originals["get_base_path_mapping"](self)
        bp = path_base_path(self)
        if bp not in d.mappings:
            raise NotFound("Invalid base path mapping identifier specified")
        return json.dumps(mapping_json(bp, d.mappings[bp]))

    def update(self: Any) -> Any:
        d = private_domain(self)
        if d is None:
            return originals["update_base_path_mapping"](self)
        bp = path_base_path(self)
        with _LOCK:
            if bp not in d.mappings:
                raise NotFound("Invalid base path mapping identifier specified")
            m = dict(d.mappings[bp])
            new_bp = bp
            for op in self._get_param("patchOperations") or []:
                verb, path, value = op.get("op"), op.get("path"), op.get("value")
                if verb != "replace":
                    raise BadRequest(f"Invalid patch operation specified. Must be 'replace' for path '{path}'")
                if path == "/stage":
                    m["stage"] = value if value not in ("", "(none)") else None
                elif path == "/restapiId":
                    m["restApiId"] = value
                elif path == "/basePath":
                    new_bp = normal_base_path(value)
                else:
                    raise BadRequest(f"Invalid patch path '{path}' specified for op 'replace'. "
                                     "Must be one of: [/basePath, /restapiId, /stage]")
            check_target(self.backend, m["restApiId"], m.get("stage"))
            if new_bp != bp and new_bp in d.mappings:
                raise Conflict("Base path already exists for this domain name")
            d.mappings.pop(bp)
            d.mappings[new_bp] = m
        return 200, {"status": 200}, json.dumps(mapping_json(new_bp, m))

    def delete(self: Any) -> Any:
        d = private_domain(self)
        if d is None:
            return originals["delete_base_path_mapping"](self)
        bp = path_base_path(self)
        with _LOCK:
            if d.mappings.pop(bp, None) is None:
                raise NotFound("Invalid base path mapping identifier specified")
        return 202, {"status": 202}, ""

    R.create_base_path_mapping = create
    R.get_base_path_mappings = get_all
    R.get_base_path_mapping = get_one
    R.update_base_path_mapping = update
    R.delete_base_path_mapping = delete

    orig_update_api = models.APIGatewayBackend.update_rest_api

    def update_rest_api(self: Any, function_id: str, patch_operations: Any) -> Any:
        if any(str(op.get("path", "")).startswith("/endpointConfiguration/types") for op in patch_operations or []):
            for d in list(_private_domains(self).values()):
                if any(m["restApiId"] == function_id for m in d.mappings.values()):
                    raise BadRequest(
                        f"Cannot change the endpoint type of REST API {function_id}: it is mapped to "
                        f"the private custom domain name {d.arn}"
                    )
        return orig_update_api(self, function_id, patch_operations)

    models.APIGatewayBackend.update_rest_api = update_rest_api


@correction
def apigw_tags_by_domain_name_arn() -> None:
    """TagResource / GetTags / UntagResource by a private domain name's ARN and by a domain name
    access association's ARN.

    AWS (API reference, TagResource: "The ARN of a resource that can be tagged"; both resources
    take `tags` on create and show them): `arn:aws:apigateway:<region>:<account>:/domainnames/<name>+<id>`
    and `…:/domainnameaccessassociations/domainname/<name>+<id>/vpcesource/<vpce>`; a resource
    that does not exist: 404 NotFoundException. moto 5.2.5: no such resources (server.py's
    apigw_tags_by_arn knows REST APIs and stages only). Test: apigw_tags_by_domain_name_arn."""
    from moto.apigateway import responses

    R = responses.APIGatewayResponse
    _moto(R, "get_tags", "tag_resource", "untag_resource")
    _, _, NotFound = _apigw_errors()
    orig = {n: getattr(R, n) for n in ("get_tags", "tag_resource", "untag_resource")}

    def target(self: Any) -> dict[str, str] | PrivateDomain | None:
        raw = self.path.split("/tags/", 1)[1] if "/tags/" in self.path else ""
        arn = unquote(raw)
        if ":/domainnameaccessassociations/" in arn:
            a = _associations(self.backend).get(arn)
            if a is None:
                raise NotFound("Invalid domain name access association identifier specified")
            return a
        if ":/domainnames/" in arn and "+" in arn:
            d = next((d for d in list(_private_domains(self.backend).values()) if d.arn == arn), None)
            if d is None:
                raise NotFound("Invalid domain name identifier specified")
            return d
        return None

    def tags_of(t: Any) -> dict[str, str]:
        return t["tags"] if isinstance(t, dict) else t.tags

    def get_tags(self: Any) -> Any:
        t = target(self)
        if t is None:
            return orig["get_tags"](self)
        return 200, {}, json.dumps({"tags": dict(tags_of(t))})

    def tag_resource(self: Any) -> Any:
        t = target(self)
        if t is None:
            return orig["tag_resource"](self)
        tags = self._get_param("tags") or {}
        _validate_tags(tags)
        with _LOCK:
            tags_of(t).update(tags)
        return 204, {"status": 204}, ""

    def untag_resource(self: Any) -> Any:
        t = target(self)
        if t is None:
            return orig["untag_resource"](self)
        keys = self.querystring.get("tagKeys") or []
        with _LOCK:
            for k in keys:
                tags_of(t).pop(k, None)
        return 204, {"status": 204}, ""

    R.get_tags = get_tags
    R.tag_resource = tag_resource
    R.untag_resource = untag_resource


# --------------------------------------------------------------------------------------------
# ACM
# --------------------------------------------------------------------------------------------


def _validation_record(cert_arn: str, domain: str) -> tuple[str, str]:
    """A DNS validation CNAME unique to (certificate, domain), as ACM makes them:
    `_<32 hex>.<domain>.` -> `_<32 hex>.<10 letters>.acm-validations.aws.`"""
    h = hashlib.sha256(f"{cert_arn}|{domain}".encode()).hexdigest()
    base = domain[2:] if domain.startswith("*.") else domain
    letters = "".join("abcdefghijklmnopqrstuvwxyz"[int(c, 16) + 10 * (i % 2)] for i, c in enumerate(h[32:42]))
    return f"_{h[:32]}.{base}.", f"_{h[32:64]}.{letters}.acm-validations.aws."


def _record_in_public_zone(account: str, name: str, value: str) -> bool:
    from moto.route53.models import route53_backends

    want_name, want_value = name.lower().rstrip("."), value.lower().rstrip(".")
    for partition in list(route53_backends[account].keys()):
        r53 = route53_backends[account][partition]
        for zone in list(r53.zones.values()):
            if zone.private_zone:
                continue
            for rr in list(zone.rrsets):
                if rr.type != "CNAME" or rr.name.lower().rstrip(".") != want_name:
                    continue
                values = [str(v.get("Value") if isinstance(v, dict) else v).lower().rstrip(".") for v in rr.records or []]
                if want_value in values:
                    return True
    return False


@correction
def acm_dns_validation() -> None:
    """A requested (DNS-validated) certificate is PENDING_VALIDATION until its validation CNAME
    is in DNS, then ISSUED.

    AWS (ACM user guide, "DNS validation"): RequestCertificate answers an ARN; DescribeCertificate
    shows Status PENDING_VALIDATION and, per domain, a ResourceRecord (a CNAME unique to the
    certificate and domain) that appears a few seconds after the request (clients wait for it);
    ACM issues the certificate (ISSUED, IssuedAt) once every record can be resolved, i.e. is in
    the public hosted zone of the domain; a private hosted zone does not validate anything. An
    imported certificate is ISSUED at once, with DomainName and SubjectAlternativeNames from the
    certificate. moto 5.2.5: every requested certificate turns ISSUED 60 s after the request
    (MOTO_ACM_VALIDATION_WAIT) whether or not any record exists, the ResourceRecord is the same
    constant for every certificate and is there at once, and IssuedAt is set while pending.
    PAPI_MOTO_ACM_RECORD_SECONDS (default 1) is the record's delay.
    Test: acm_requested_certificate_waits_for_its_dns_record."""
    from moto.acm import models

    C = models.CertBundle
    _moto(C, "check", "describe", "__init__")
    _moto(models, "AWSCertificateManagerBackend", "acm_backends", "datetime_to_epoch", "utcnow", "settings")
    from moto.route53.models import route53_backends  # noqa: F401  (fails loudly if moved)

    def records_ready(self: Any) -> bool:
        return time.monotonic() >= self.__dict__.get("_papi_requested", 0) + ACM_RECORD_SECONDS

    def domains(self: Any) -> list[str]:
        names = list(self.sans) + ([self.common_name] if self.common_name and self.common_name not in self.sans else [])
        return names

    def validated(self: Any) -> bool:
        account = self.arn.split(":")[4]
        return records_ready(self) and all(
            _record_in_public_zone(account, *_validation_record(self.arn, d)) for d in domains(self)
        )

    orig_init = C.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_init(self, *args, **kwargs)
        self.__dict__["_papi_requested"] = time.monotonic()

    C.__init__ = init

    orig_check = C.check

    def check(self: Any) -> None:
        if self.type == "AMAZON_ISSUED" and self.status == "PENDING_VALIDATION":
            # moto's own timer is not used; DNS decides.
            saved = models.settings.ACM_VALIDATION_WAIT
            try:
                models.settings.ACM_VALIDATION_WAIT = 10 ** 9
                orig_check(self)
            finally:
                models.settings.ACM_VALIDATION_WAIT = saved
            if self.status == "PENDING_VALIDATION" and validated(self):
                self.status = "ISSUED"
                self.__dict__["_papi_issued_at"] = models.utcnow()
            return
        orig_check(self)

    C.check = check

    orig_describe = C.describe

    def describe(self: Any) -> dict[str, Any]:
        out = orig_describe(self)
        cert = out["Certificate"]
        if self.type != "AMAZON_ISSUED":
            return out
        if self.status == "ISSUED":
            issued = self.__dict__.get("_papi_issued_at")
            if issued is not None:
                cert["IssuedAt"] = models.datetime_to_epoch(issued)
        else:
            cert.pop("IssuedAt", None)
        options = []
        for opt in cert.get("DomainValidationOptions", []):
            name, value = _validation_record(self.arn, opt["DomainName"])
            opt = dict(opt)
            if self.status == "ISSUED":
                opt["ValidationStatus"] = "SUCCESS"
            elif self.status == "PENDING_VALIDATION":
                opt["ValidationStatus"] = "PENDING_VALIDATION"
            if records_ready(self):
                opt["ResourceRecord"] = {"Name": name, "Type": "CNAME", "Value": value}
            else:
                opt.pop("ResourceRecord", None)
            options.append(opt)
        if "DomainValidationOptions" in cert:
            cert["DomainValidationOptions"] = options
        return out

    C.describe = describe


# --------------------------------------------------------------------------------------------
# Route 53
# --------------------------------------------------------------------------------------------


def _r53_error(code: str, message: str) -> Exception:
    from moto.route53.exceptions import Route53ClientError

    return Route53ClientError(code, message)


def _fqdn(name: str) -> str:
    name = name.lower()
    # Route 53 stores \052 for '*' in answers; accept both when matching
    name = name.replace("\\052", "*")
    return name if name.endswith(".") else name + "."


def _values(rr: dict[str, Any]) -> list[str]:
    out = []
    for v in rr.get("ResourceRecords") or []:
        out.append(str(v.get("Value") if isinstance(v, dict) else v))
    return sorted(out)


def _alias(rr: dict[str, Any]) -> tuple[str, str, str] | None:
    a = rr.get("AliasTarget")
    if not a:
        return None
    return (_fqdn(str(a.get("DNSName", ""))), str(a.get("HostedZoneId", "")),
            str(a.get("EvaluateTargetHealth", "false")).lower())


def _rr_from_model(rs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": rs.name, "Type": rs.type}
    if rs.set_identifier is not None:
        out["SetIdentifier"] = rs.set_identifier
    if rs.ttl is not None:
        out["TTL"] = rs.ttl
    if rs.records:
        out["ResourceRecords"] = [{"Value": v} for v in rs.records]
    if rs.alias_target:
        out["AliasTarget"] = rs.alias_target
    return out


@correction
def route53_change_batch_as_aws() -> None:
    """ChangeResourceRecordSets validates the whole batch as AWS does, then applies it at once.

    AWS (Route 53 API reference, ChangeResourceRecordSets, and its InvalidChangeBatch messages):
    UPSERT creates or replaces (idempotent); CREATE of a record that exists: InvalidChangeBatch
    "Tried to create resource record set [name='x.', type='A'] but it already exists"; DELETE
    must name the record exactly (type, TTL and values, or the alias target): otherwise
    InvalidChangeBatch "Tried to delete resource record set [name='x.', type='A'] but the values
    provided do not match the current values", and for a record that does not exist "... but it
    was not found"; names match case-insensitively with or without the final dot; a CNAME can't
    share its name with another record ("RRSet of type CNAME with DNS name x. is not permitted as
    it conflicts with other records with the same DNS name in zone z."); a batch is atomic (one
    bad change: nothing is applied). moto 5.2.5: CREATE of an existing record adds a duplicate;
    DELETE of a record that is gone succeeds; DELETE with other values answers InvalidInput
    "Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords] ..."; DELETE of an
    alias with another target deletes the record anyway; a CNAME silently replaces the A record
    of its name; a name in other case or with a final dot does not match.
    Test: route53_change_batch_as_aws."""
    from moto.route53 import models

    B = models.Route53Backend
    _moto(B, "change_resource_record_sets", "get_hosted_zone")
    _moto(models, "FakeZone", "RecordSet")

    def change_resource_record_sets(self: Any, zoneid: str, change_list: list[dict[str, Any]]) -> None:
        zone = self.get_hosted_zone(zoneid)
        zone_name = _fqdn(zone.name)
        with _LOCK:
            state = [_rr_from_model(rs) for rs in zone.rrsets]

            def key(rr: dict[str, Any]) -> tuple[str, str, Any]:
                return (_fqdn(rr["Name"]), rr["Type"], rr.get("SetIdentifier"))

            def find(rr: dict[str, Any]) -> int | None:
                k = key(rr)
                return next((i for i, cur in enumerate(state) if key(cur) == k), None)

            for change in change_list:
                action = change.get("Action")
                rr = dict(change["ResourceRecordSet"])
                name = _fqdn(rr["Name"])
                desc = f"[name='{name}', type='{rr['Type']}'" + (
                    f", set-identifier='{rr['SetIdentifier']}']" if rr.get("SetIdentifier") else "]")
                if action not in ("CREATE", "UPSERT", "DELETE"):
                    raise _r53_error("InvalidInput", f"Invalid XML ; cvc-enumeration-valid: Value '{action}' is not facet-valid")
                if not (name == zone_name or name.endswith("." + zone_name)):
                    raise _r53_error("InvalidChangeBatch",
                                     f"RRSet with DNS name {name} is not permitted in zone {zone_name}")
                has_alias = bool(rr.get("AliasTarget"))
                has_values = rr.get("TTL") is not None and bool(rr.get("ResourceRecords"))
                if has_alias == has_values and not rr.get("TrafficPolicyInstanceId"):
                    raise _r53_error(
                        "InvalidInput",
                        "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], "
                        f"or TrafficPolicyInstanceId], but found {'both' if has_alias else 'none'} in Change with "
                        f"[Action={action}, Name={rr['Name']}, Type={rr['Type']}, SetIdentifier={rr.get('SetIdentifier', 'null')}]",
                    )
                i = find(rr)
                if action == "DELETE":
                    if i is None:
                        raise _r53_error("InvalidChangeBatch",
                                         f"[Tried to delete resource record set {desc} but it was not found]")
                    cur = state[i]
                    same = (_alias(cur) == _alias(rr)) if has_alias else (
                        _alias(cur) is None and str(cur.get("TTL")) == str(rr.get("TTL")) and _values(cur) == _values(rr))
                    if not same:
                        raise _r53_error("InvalidChangeBatch",
                                         f"[Tried to delete resource record set {desc} but the values provided do not match the current values]")
                    state.pop(i)
                    continue
                if action == "CREATE" and i is not None:
                    raise _r53_error("InvalidChangeBatch",
                                     f"[Tried to create resource record set {desc} but it already exists]")
                others = [cur for cur in state if _fqdn(cur["Name"]) == name and key(cur) != key(rr)]
                if rr["Type"] == "CNAME" and others:
                    raise _r53_error("InvalidChangeBatch",
                                     f"[RRSet of type CNAME with DNS name {name} is not permitted as it conflicts "
                                     f"with other records with the same DNS name in zone {zone_name}]")
                if rr["Type"] != "CNAME" and any(cur["Type"] == "CNAME" for cur in others):
                    raise _r53_error("InvalidChangeBatch",
                                     f"[RRSet of type {rr['Type']} with DNS name {name} is not permitted because a "
                                     f"conflicting RRSet of type CNAME with the same DNS name already exists in zone {zone_name}]")
                rr["Name"] = rr["Name"] if rr["Name"].endswith(".") else rr["Name"] + "."
                if i is None:
                    state.append(rr)
                else:
                    state[i] = rr
            # every change is valid: apply the batch
            new_sets = []
            for rr in state:
                kwargs = dict(rr)
                if "ResourceRecords" in kwargs:
                    kwargs["ResourceRecords"] = [v.get("Value") if isinstance(v, dict) else v for v in kwargs["ResourceRecords"]]
                new_sets.append(models.RecordSet(kwargs))
            zone.rrsets = new_sets
            import copy

            for change in change_list:
                zone.rr_changes.append(copy.deepcopy(change))

    B.change_resource_record_sets = change_resource_record_sets


@correction
def route53_create_hosted_zone_checks() -> None:
    """CreateHostedZone: a CallerReference is used once; a private zone's VPC must exist.

    AWS (Route 53 API reference, CreateHostedZone): CallerReference "a unique string that
    identifies the request and that allows failed CreateHostedZone requests to be retried
    without the risk of executing the operation twice": a second request with the same one
    answers HostedZoneAlreadyExists (409) "A hosted zone has already been created with the
    specified caller reference." (a retry must find the zone, not get a second one); a VPC that
    does not exist: InvalidVPCId; a zone created with a VPC is private (GetHostedZone:
    Config.PrivateZone=true, VPCs). moto 5.2.5: creates a second zone; accepts any VPC id; without
    HostedZoneConfig.PrivateZone=true it drops the VPC and makes a public zone.
    Test: route53_caller_reference_is_used_once."""
    from moto.route53 import models
    from moto.ec2.models import ec2_backends

    B = models.Route53Backend
    _moto(B, "create_hosted_zone")
    orig = B.create_hosted_zone

    def create_hosted_zone(self: Any, name: str, private_zone: bool, caller_reference: str | None = None,
                           vpcid: str | None = None, vpcregion: str | None = None, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            if caller_reference and any(z.caller_reference == caller_reference for z in list(self.zones.values())):
                raise _r53_error("HostedZoneAlreadyExists",
                                 "A hosted zone has already been created with the specified caller reference.")
            if private_zone and vpcid:
                region = vpcregion or "us-east-1"
                try:
                    ec2_backends[self.account_id][region].get_vpc(vpcid)
                except Exception:
                    raise _r53_error("InvalidVPCId", f"The VPC ID '{vpcid}' is not valid or does not exist in region {region}.")
            return orig(self, name, private_zone, caller_reference, vpcid, vpcregion, *args, **kwargs)

    B.create_hosted_zone = create_hosted_zone

    # A VPC makes the zone private (AWS: "VPC: (Private hosted zones only) ..."; clients such as
    # terraform's aws_route53_zone send only VPC). moto reads the VPC only when
    # HostedZoneConfig.PrivateZone=true and otherwise makes a public zone without it.
    from moto.route53 import responses

    Resp = responses.Route53
    _moto(Resp, "create_hosted_zone", "_get_param", "_get_bool_param")
    orig_resp = Resp.create_hosted_zone

    def resp_create_hosted_zone(self: Any) -> Any:
        if self._get_param("VPC.VPCId") and not self._get_bool_param("HostedZoneConfig.PrivateZone", False):
            orig_bool = self._get_bool_param

            def get_bool(name: str, default: Any = None) -> Any:
                return True if name == "HostedZoneConfig.PrivateZone" else orig_bool(name, default)

            self._get_bool_param = get_bool
        return orig_resp(self)

    Resp.create_hosted_zone = resp_create_hosted_zone
