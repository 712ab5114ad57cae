"""The corrected moto server of the test bed (see testbed/CONTRACT.md and testbed/moto/README.md).

Imports the pinned moto, applies our corrections (monkey-patches of moto's backends and
responses where moto differs from AWS in ways that would hide real operator bugs), then serves
every service on one port of 127.0.0.1, like `moto_server`.

    python server.py [--host 127.0.0.1] [--port 0] [--port-file FILE]

With --port 0 (the default) the kernel picks a free port while binding, so there is no race
between choosing a port and using it; the bound port is written to --port-file once the socket
listens. SIGTERM/SIGINT stop the server.

Each correction is one function decorated with @correction; its docstring says what AWS does
(with the AWS doc page), what moto 5.2.5 does, and which test in tests/parts/moto_fidelity.rs checks it.
The corrections for private custom domain names, ACM and Route 53 are in domains.py (tests in
tests/parts/moto_fidelity_domains.rs), applied after these.
Timings are configurable through the environment:

  PAPI_MOTO_ENDPOINT_PENDING_SECONDS   (2)   a new VPC endpoint is `pending` this long
  PAPI_MOTO_ENDPOINT_DELETING_SECONDS  (2)   a deleted endpoint is `deleting` this long ...
  PAPI_MOTO_ENDPOINT_TOMBSTONE_SECONDS (10)  ... then `deleted` this long, then gone
  PAPI_MOTO_SG_RELEASE_SECONDS         (0)   after the endpoint is deleted, its security groups
                                             stay "in use" (DependencyViolation) this much longer
  PAPI_MOTO_FUNCTION_PENDING_SECONDS   (1)   a new Lambda function is `Pending` this long
  PAPI_MOTO_FUNCTION_UPDATE_SECONDS    (1)   LastUpdateStatus is `InProgress` this long
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable
from urllib.parse import unquote


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        print(f"server.py: ignoring {name}={raw!r} (not a number)", file=sys.stderr)
        return default


ENDPOINT_PENDING = _env_seconds("PAPI_MOTO_ENDPOINT_PENDING_SECONDS", 2)
ENDPOINT_DELETING = _env_seconds("PAPI_MOTO_ENDPOINT_DELETING_SECONDS", 2)
ENDPOINT_TOMBSTONE = _env_seconds("PAPI_MOTO_ENDPOINT_TOMBSTONE_SECONDS", 10)
SG_RELEASE = _env_seconds("PAPI_MOTO_SG_RELEASE_SECONDS", 0)
FUNCTION_PENDING = _env_seconds("PAPI_MOTO_FUNCTION_PENDING_SECONDS", 1)
FUNCTION_UPDATE = _env_seconds("PAPI_MOTO_FUNCTION_UPDATE_SECONDS", 1)

_LOCK = threading.RLock()  # serialises our own read-modify-write sections
CORRECTIONS: list[Callable[[], None]] = []


def correction(fn: Callable[[], None]) -> Callable[[], None]:
    CORRECTIONS.append(fn)
    return fn


def now() -> float:
    return time.monotonic()


# --------------------------------------------------------------------------------------------
# API Gateway
# --------------------------------------------------------------------------------------------


def aws_policy_text(policy: str, region: str, account: str, api_id: str) -> str:
    """The resource policy as GetRestApi returns it on AWS.

    AWS parses the policy document, replaces the `execute-api:` shorthand in Resource/NotResource
    with the API's ARN (`arn:aws:execute-api:<region>:<account>:<api-id>`), stores it minified and
    returns it JSON-escaped *inside* the string: the SDK's `policy` string reads
    `{\\"Version\\":\\"2012-10-17\\",...\\"Resource\\":\\"arn:aws:execute-api:us-east-1:123456789012:abc123\\/*\\"}`
    (every `"` is `\\"`, every `/` is `\\/`)."""
    try:
        doc = json.loads(policy)
    except (TypeError, ValueError):
        return policy
    prefix = f"arn:aws:execute-api:{region}:{account}:{api_id}"

    def expand(res: Any) -> Any:
        if isinstance(res, str) and res.startswith("execute-api:"):
            return prefix + res[len("execute-api:"):]
        if isinstance(res, list):
            return [expand(r) for r in res]
        return res

    statements = doc.get("Statement") if isinstance(doc, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements or []:
        if isinstance(st, dict):
            for key in ("Resource", "NotResource"):
                if key in st:
                    st[key] = expand(st[key])
    minified = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(minified, ensure_ascii=False)[1:-1].replace("/", "\\/")


def _validate_policy(policy: Any) -> None:
    from moto.apigateway.exceptions import BadRequestException

    if policy in (None, ""):
        return
    try:
        doc = json.loads(policy)
        if not isinstance(doc, dict):
            raise ValueError
    except (TypeError, ValueError):
        # AWS: 400 BadRequestException on a policy that is not a JSON object.
        raise BadRequestException(
            "Invalid policy document. Please check the policy syntax and ensure that Principals are valid."
        )


@correction
def apigw_policy_as_aws_returns_it() -> None:
    """GetRestApi / GetRestApis / CreateRestApi / UpdateRestApi return `policy` as AWS does.

    AWS: the policy comes back minified, JSON-escaped inside the string (quotes as `\\"`, slashes
    as `\\/`), with `execute-api:/*` expanded to `arn:aws:execute-api:<region>:<account>:<id>/*`
    (API Gateway developer guide, "Create and attach an API Gateway resource policy to an API";
    the escaping is what every client that reads it back has to undo, e.g. terraform-provider-aws
    "Normalize REST API Policy JSON before unquoting"). moto: echoes the text it was given.
    Also: an invalid JSON policy is rejected with BadRequestException (400) as on AWS.
    Test: apigw_policy_is_escaped_and_expanded."""
    from moto.apigateway import models

    orig_to_dict = models.RestAPI.to_dict

    def to_dict(self: Any) -> dict[str, Any]:
        d = orig_to_dict(self)
        if self.policy:
            d["policy"] = aws_policy_text(self.policy, self.region_name, self.account_id, self.id)
        return d

    models.RestAPI.to_dict = to_dict

    orig_create = models.APIGatewayBackend.create_rest_api

    def create_rest_api(self: Any, name: str, description: str, *args: Any, **kwargs: Any) -> Any:
        _validate_policy(kwargs.get("policy"))
        return orig_create(self, name, description, *args, **kwargs)

    models.APIGatewayBackend.create_rest_api = create_rest_api


@correction
def apigw_update_rest_api_patch_paths() -> None:
    """UpdateRestApi patch operations on `/endpointConfiguration/vpcEndpointIds` and `/policy`.

    AWS (API Gateway developer guide, "Associate or disassociate a VPC endpoint with a private
    REST API"): `op=add, path=/endpointConfiguration/vpcEndpointIds, value=vpce-...` appends the
    endpoint, `op=remove` with the same path and value removes it; `op=replace` with a
    comma-separated value sets the whole list (our reading; the documented forms are add/remove,
    which the operator should use). `/endpointConfiguration/types/<OLD>` replace sets the type.
    moto: ignores add/remove, and `replace` writes the value into `types`.
    `replace /policy` is validated like CreateRestApi; `remove /policy` clears it.
    Test: apigw_update_vpc_endpoint_ids."""
    from moto.apigateway import models
    from moto.apigateway.exceptions import BadRequestException

    orig = models.RestAPI.apply_patch_operations
    vpce_path = "/endpointConfiguration/vpcEndpointIds"

    def apply_patch_operations(self: Any, patch_operations: list[dict[str, Any]]) -> None:
        rest = []
        for op in patch_operations:
            path = op.get("path", "")
            verb = op.get("op")
            value = op.get("value") or ""
            ids = [v.strip() for v in value.split(",") if v.strip()]
            if path == vpce_path:
                cfg = self.endpoint_configuration
                current = list(cfg.get("vpcEndpointIds") or [])
                if verb == "add":
                    if not ids:
                        raise BadRequestException(f"Invalid value for {vpce_path}: a VPC endpoint id is required")
                    current += [i for i in ids if i not in current]
                elif verb == "remove":
                    current = [i for i in current if i not in ids] if ids else []
                elif verb == "replace":
                    current = ids
                else:
                    raise BadRequestException("Invalid patch operation specified. Must be one of: [add, remove, replace]")
                if current and "PRIVATE" not in (cfg.get("types") or []):
                    raise BadRequestException("VPC endpoint IDs are only supported for PRIVATE APIs")
                cfg["vpcEndpointIds"] = current
                continue
            if path.startswith(vpce_path + "/"):
                raise BadRequestException(f"Invalid patch path {path}")
            if path.startswith("/endpointConfiguration/types"):
                if verb == "replace" and value:
                    self.endpoint_configuration["types"] = [value]
                    continue
                raise BadRequestException(f"Invalid patch path {path}")
            if path == "/policy":
                if verb == "replace":
                    _validate_policy(value)
                    self.policy = value or None
                elif verb == "remove":
                    self.policy = None
                continue
            rest.append(op)
        if rest:
            orig(self, rest)

    models.RestAPI.apply_patch_operations = apply_patch_operations


@correction
def apigw_not_found_is_404() -> None:
    """Deleting/getting what is gone answers NotFoundException (HTTP 404), never a 500.

    AWS: DeleteRestApi, GetDeployment, DeleteDeployment, GetIntegration, DeleteMethod,
    DeleteStage on an unknown id answer 404 NotFoundException (API Gateway API reference,
    "Common errors"/each operation's Errors). moto: DeleteRestApi twice and GetDeployment with
    an unknown id raise KeyError (500); DeploymentNotFound and NoIntegrationDefined are 400.
    Test: apigw_deletes_are_404_when_gone."""
    from moto.apigateway import exceptions, models

    # Every NotFoundException subclass that does not set its own status gets 404.
    exceptions.NotFoundException.code = 404
    for cls in list(vars(exceptions).values()):
        if isinstance(cls, type) and issubclass(cls, exceptions.NotFoundException):
            if "code" not in vars(cls):
                cls.code = 404

    def delete_rest_api(self: Any, function_id: str) -> Any:
        if function_id not in self.apis:
            raise exceptions.RestAPINotFound()
        return self.apis.pop(function_id)

    models.APIGatewayBackend.delete_rest_api = delete_rest_api

    def get_deployment(self: Any, deployment_id: str) -> Any:
        if deployment_id not in self.deployments:
            raise exceptions.DeploymentNotFoundException()
        return self.deployments[deployment_id]

    models.RestAPI.get_deployment = get_deployment

    orig_delete_method = models.APIGatewayBackend.delete_method

    def delete_method(self: Any, function_id: str, resource_id: str, method_type: str) -> Any:
        resource = self.get_resource(function_id, resource_id)
        if method_type not in resource.resource_methods:
            raise exceptions.MethodNotFoundException()
        return orig_delete_method(self, function_id, resource_id, method_type)

    models.APIGatewayBackend.delete_method = delete_method


@correction
def apigw_update_deployment() -> None:
    """UpdateDeployment replaces a deployment's description.

    AWS: PATCH /restapis/{api}/deployments/{id} with patch operations; `replace /description`
    changes the description and answers the deployment (API reference, UpdateDeployment). moto:
    not implemented, the request fails. The operator stamps its fingerprint on the deployment of
    an adopted API this way. Test: apigw_update_deployment_description."""
    from moto.apigateway import exceptions, responses

    def update_deployment(self: Any) -> Any:
        parts = self.path.split("/")
        deployment = self.backend.get_deployment(parts[2], parts[4])
        for op in json.loads(self.body or "{}").get("patchOperations", []):
            if op.get("op") == "replace" and op.get("path") == "/description":
                deployment.description = op.get("value", "")
            else:
                raise exceptions.BadRequestException(
                    "BadRequestException", f"Invalid patch path {op.get('path')}")
        return 200, {"status": 200}, json.dumps(deployment.to_json())

    responses.APIGatewayResponse.update_deployment = update_deployment


@correction
def apigw_delete_deployment_checks_live_stages() -> None:
    """DeleteDeployment refuses a deployment that a stage points at *now*.

    AWS: BadRequestException "Active stages pointing to this deployment must be moved or
    deleted" when any stage's deploymentId is this deployment; a deployment no stage uses can
    be deleted (API reference, DeleteDeployment). moto: checks the stage the deployment was
    *created* with, so after UpdateStage moves the stage to a new deployment the old one cannot
    be deleted and the new one can. Test: apigw_delete_deployment_follows_stage."""
    from moto.apigateway import exceptions, models

    def delete_deployment(self: Any, deployment_id: str) -> Any:
        if deployment_id not in self.deployments:
            raise exceptions.DeploymentNotFoundException()
        if any(st.deployment_id == deployment_id for st in self.stages.values()):
            raise exceptions.StageStillActive()
        return self.deployments.pop(deployment_id)

    models.RestAPI.delete_deployment = delete_deployment


@correction
def apigw_deployment_snapshot() -> None:
    """A deployment freezes the API: a stage serves what was deployed, not the live API.

    AWS (API Gateway developer guide, "Deploy a REST API"): CreateDeployment takes a snapshot of
    the API's resources, methods, integrations and resource policy; a stage serves its
    deployment's snapshot, so a change (a new policy, a new method) has no effect until it is
    deployed. moto keeps no snapshot (and serves nothing). The snapshot is recorded on the
    deployment (`_papi_snapshot`) for the test bed's execute-api data plane (dataplane.py).
    Test: data_plane::undeployed_policy_edit_changes_nothing (tests/parts/data_plane.rs)."""
    from moto.apigateway import models

    import dataplane

    orig = models.RestAPI.create_deployment

    def create_deployment(self: Any, name: str, description: str, stage_variables: Any = None) -> Any:
        with _LOCK:
            deployment = orig(self, name, description, stage_variables)
            deployment.__dict__["_papi_snapshot"] = dataplane.snapshot(self)
        return deployment

    models.RestAPI.create_deployment = create_deployment


@correction
def apigw_tags_by_arn() -> None:
    """TagResource / UntagResource / GetTags by ARN (`arn:aws:apigateway:<region>::/restapis/<id>`
    and `.../restapis/<id>/stages/<name>`).

    AWS: PUT/DELETE/GET /tags/{resource_arn} with the ARN URL-encoded (API reference,
    TagResource/UntagResource/GetTags); tags given to CreateRestApi are the same tags.
    moto: no route for a REST API ARN (404 HTML page) and no handler at all.
    Test: apigw_tags_by_rest_api_arn."""
    from moto.apigateway import urls
    from moto.apigateway.exceptions import BadRequestException, NotFoundException
    from moto.apigateway.responses import APIGatewayResponse

    handler = APIGatewayResponse.dispatch
    urls.url_paths["{0}/tags/(?P<resource_arn>.+)$"] = handler

    arn_re = re.compile(
        r"^arn:aws[a-z-]*:apigateway:(?P<region>[^:]+)::/restapis/(?P<api>[^/]+)(/stages/(?P<stage>[^/]+))?$"
    )

    def _target(self: Any) -> Any:
        raw = self.path.split("/tags/", 1)[1] if "/tags/" in self.path else ""
        arn = unquote(raw)
        m = arn_re.match(arn)
        if not m:
            raise BadRequestException(f"Invalid ARN specified in the request: {arn}")
        api = self.backend.get_rest_api(m.group("api"))
        if m.group("stage"):
            stage = api.stages.get(m.group("stage"))
            if stage is None:
                raise NotFoundException("Invalid stage identifier specified")
            return stage
        return api

    def get_tags(self: Any) -> Any:
        target = _target(self)
        return 200, {}, json.dumps({"tags": dict(target.tags or {})})

    def tag_resource(self: Any) -> Any:
        target = _target(self)
        tags = self._get_param("tags") or {}
        with _LOCK:
            merged = dict(target.tags or {})
            merged.update(tags)
            target.tags = merged
        return 204, {"status": 204}, ""

    def untag_resource(self: Any) -> Any:
        target = _target(self)
        keys = self.querystring.get("tagKeys") or []
        with _LOCK:
            target.tags = {k: v for k, v in (target.tags or {}).items() if k not in keys}
        return 204, {"status": 204}, ""

    APIGatewayResponse.get_tags = get_tags
    APIGatewayResponse.tag_resource = tag_resource
    APIGatewayResponse.untag_resource = untag_resource


@correction
def apigw_conflicts_on_existing() -> None:
    """CreateResource and PutMethod on something that exists answer 409 ConflictException.

    AWS (API reference, CreateResource/PutMethod "ConflictException"): "Another resource with
    the same parent already has this name: {proxy+}" and "Method already exists for this
    resource". moto: creates a second `/{proxy+}` resource / silently replaces the method (and
    drops its integration). GetIntegration on a method that is gone or has no integration is
    404 NotFoundException (moto: 200 with an empty body). Test: apigw_create_existing_conflicts."""
    from moto.apigateway import models
    from moto.apigateway.exceptions import ConflictException, NotFoundException

    orig_create = models.APIGatewayBackend.create_resource

    def create_resource(self: Any, function_id: str, parent_resource_id: str, path_part: str) -> Any:
        api = self.get_rest_api(function_id)
        with _LOCK:
            if path_part:
                if parent_resource_id not in api.resources:
                    from moto.apigateway.exceptions import ResourceIdNotFoundException

                    raise ResourceIdNotFoundException()
                for r in api.resources.values():
                    if r.parent_id == parent_resource_id and r.path_part == path_part:
                        raise ConflictException(
                            f"Another resource with the same parent already has this name: {path_part}"
                        )
            return orig_create(self, function_id, parent_resource_id, path_part)

    models.APIGatewayBackend.create_resource = create_resource

    orig_put = models.APIGatewayBackend.put_method

    def put_method(self: Any, function_id: str, resource_id: str, method_type: str, *a: Any, **kw: Any) -> Any:
        resource = self.get_resource(function_id, resource_id)
        with _LOCK:
            if method_type in resource.resource_methods:
                raise ConflictException("Method already exists for this resource")
            return orig_put(self, function_id, resource_id, method_type, *a, **kw)

    models.APIGatewayBackend.put_method = put_method

    def get_integration(self: Any, function_id: str, resource_id: str, method_type: str) -> Any:
        resource = self.get_resource(function_id, resource_id)
        method = resource.resource_methods.get(method_type)
        if method is None:
            raise NotFoundException("Invalid Method identifier specified")
        if method.method_integration is None:
            raise NotFoundException("Invalid Integration identifier specified")
        return method.method_integration

    models.APIGatewayBackend.get_integration = get_integration


@correction
def apigw_stage_needs_existing_deployment() -> None:
    """CreateStage / UpdateStage `/deploymentId` with a deployment that does not exist fail.

    AWS: NotFoundException (404) "Invalid deployment identifier specified" (API reference,
    CreateStage/UpdateStage). moto: accepts any id, so a stage can point at a deleted
    deployment and the operator would never notice. Test: apigw_stage_needs_existing_deployment."""
    from moto.apigateway import models
    from moto.apigateway.exceptions import NotFoundException

    def check(api: Any, deployment_id: Any) -> None:
        if deployment_id not in api.deployments:
            raise NotFoundException("Invalid deployment identifier specified")

    orig_create = models.APIGatewayBackend.create_stage

    def create_stage(self: Any, function_id: str, stage_name: str, deploymentId: str, *a: Any, **kw: Any) -> Any:
        check(self.get_rest_api(function_id), deploymentId)
        return orig_create(self, function_id, stage_name, deploymentId, *a, **kw)

    models.APIGatewayBackend.create_stage = create_stage

    orig_update = models.APIGatewayBackend.update_stage

    def update_stage(self: Any, function_id: str, stage_name: str, patch_operations: Any) -> Any:
        api = self.get_rest_api(function_id)
        if stage_name not in api.stages:
            from moto.apigateway.exceptions import StageNotFoundException

            raise StageNotFoundException()
        for op in patch_operations or []:
            if op.get("path") == "/deploymentId" and op.get("op") == "replace":
                check(api, op.get("value"))
        return orig_update(self, function_id, stage_name, patch_operations)

    models.APIGatewayBackend.update_stage = update_stage


def _page(items: list[Any], key: Callable[[Any], str], token: str | None, limit: int | None,
          default: int, maximum: int) -> tuple[list[Any], str | None]:
    """Key-based paging (like AWS's opaque tokens, robust to concurrent creates/deletes):
    items sorted by key, the token names the last key returned."""
    import base64

    items = sorted(items, key=key)
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode() + b"==").decode()
        except Exception:
            after = "\uffff"
        items = [i for i in items if key(i) > after]
    n = max(1, min(limit or default, maximum))
    chunk = items[:n]
    next_token = None
    if len(items) > n:
        next_token = base64.urlsafe_b64encode(key(chunk[-1]).encode()).decode().rstrip("=")
    return chunk, next_token


@correction
def paging() -> None:
    """GetRestApis and ListFunctions page as on AWS.

    AWS: GetRestApis returns at most `limit` items (default 25, max 500) and a `position` token
    when there are more (API reference, GetRestApis); ListFunctions returns at most MaxItems
    (default 50) and `NextMarker` (Lambda API reference, ListFunctions). moto: ignores limit and
    MaxItems and returns everything at once, so an operator that forgets to page passes here and
    breaks on an account with many APIs. Test: paging_get_rest_apis_and_list_functions."""
    from moto.apigateway.responses import APIGatewayResponse
    from moto.awslambda.responses import LambdaResponse

    def get_rest_apis(self: Any) -> str:
        apis = self.backend.list_apis()
        limit = self._get_param("limit")
        try:
            limit = int(limit) if limit is not None else None
        except ValueError:
            limit = None
        chunk, pos = _page(apis, lambda a: a.id, self._get_param("position"), limit, 25, 500)
        out: dict[str, Any] = {"item": [a.to_dict() for a in chunk]}
        if pos:
            out["position"] = pos
        return json.dumps(out)

    APIGatewayResponse.get_rest_apis = get_rest_apis

    def list_functions(self: Any) -> str:
        qs = self.querystring
        func_version = qs.get("FunctionVersion", [None])[0]
        marker = qs.get("Marker", [None])[0]
        max_items = qs.get("MaxItems", [None])[0]
        fns = list(self.backend.list_functions(func_version))
        chunk, nxt = _page(fns, lambda f: f.function_name, marker, int(max_items) if max_items else None, 50, 10000)
        out: dict[str, Any] = {"Functions": [f.get_configuration() for f in chunk]}
        if nxt:
            out["NextMarker"] = nxt
        return json.dumps(out)

    LambdaResponse.list_functions = list_functions


# --------------------------------------------------------------------------------------------
# EC2: VPC endpoints and security groups
# --------------------------------------------------------------------------------------------

_TOKENS: dict[tuple[str, str, str], tuple[Any, str]] = {}


def _ec2_error(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


def _private_dns_domain(service_name: str) -> str:
    # com.amazonaws.us-east-1.execute-api -> execute-api.us-east-1.amazonaws.com
    parts = service_name.split(".")
    if len(parts) >= 4 and parts[0] == "com" and parts[1] == "amazonaws":
        return f"{'.'.join(parts[3:])}.{parts[2]}.amazonaws.com"
    return service_name


def _check_private_dns(backend: Any, vpc_id: str, service_name: str, exclude: str | None) -> None:
    """AWS: one private-DNS interface endpoint per service domain per VPC."""
    vpc = backend.get_vpc(vpc_id)
    if not (getattr(vpc, "enable_dns_support", True) and getattr(vpc, "enable_dns_hostnames", True)):
        raise _ec2_error(
            "InvalidParameter",
            "Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC "
            f"attributes set to true for {vpc_id}",
        )
    for ep in list(backend.vpc_end_points.values()):
        if ep.id == exclude or ep.vpc_id != vpc_id or ep.service_name != service_name:
            continue
        if ep.private_dns_enabled and ep.state not in ("deleted",):
            raise _ec2_error(
                "InvalidParameter",
                "private-dns-enabled cannot be set because there is already a conflicting DNS "
                f"domain for {_private_dns_domain(service_name)} in the VPC {vpc_id}",
            )


def _check_one_subnet_per_az(backend: Any, subnet_ids: list[str]) -> None:
    """AWS: an interface endpoint has at most one subnet per Availability Zone."""
    seen: dict[str, str] = {}
    for sid in subnet_ids:
        az = backend.get_subnet(sid).availability_zone
        if az in seen:
            raise _ec2_error(
                "DuplicateSubnetsInSameZone",
                f"Found another VPC endpoint subnet in the availability zone of {seen[az]}. VPC "
                "endpoint subnets should be in different availability zones supported by the VPC "
                "endpoint service.",
            )
        seen[az] = sid


def _dns_entries(backend: Any, ep_id: str, service_name: str, subnet_ids: list[str]) -> list[dict[str, str]]:
    """DnsEntries as AWS lists them for an interface endpoint: regional name first, then one per
    Availability Zone: vpce-<id>-<suffix>[-<az>].<service>.<region>.vpce.amazonaws.com."""
    from moto.moto_api._internal import mock_random

    parts = service_name.split(".")
    if len(parts) >= 4 and parts[0] == "com" and parts[1] == "amazonaws":
        region = parts[2]
        svc = ".".join(parts[3:])
    else:
        region, svc = backend.region_name, service_name
    suffix = "".join(mock_random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
    zone = "Z7HUB22UULQXV"
    base = f"{ep_id}-{suffix}"
    entries = [{"dns_name": f"{base}.{svc}.{region}.vpce.amazonaws.com", "hosted_zone_id": zone}]
    azs = []
    for sid in subnet_ids:
        try:
            az = backend.get_subnet(sid).availability_zone
        except Exception:
            continue
        if az not in azs:
            azs.append(az)
    for az in azs:
        entries.append({"dns_name": f"{base}-{az}.{svc}.{region}.vpce.amazonaws.com", "hosted_zone_id": zone})
    return entries


def _fingerprint(kwargs: dict[str, Any]) -> Any:
    def norm(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(sorted(str(x) for x in v))
        if isinstance(v, dict):
            return tuple(sorted((str(k), str(x)) for k, x in v.items()))
        return v

    keys = ("vpc_id", "service_name", "endpoint_type", "policy_document", "route_table_ids",
            "subnet_ids", "security_group_ids", "tags", "private_dns_enabled")
    return tuple((k, norm(kwargs.get(k))) for k in keys)


@correction
def ec2_vpc_endpoint_lifecycle() -> None:
    """VPC endpoint states, idempotency, private DNS, DNS entries, DeleteVpcEndpoints results.

    - State: AWS creates an interface endpoint `pending`, then `available` (PrivateLink guide,
      "Interface endpoint lifecycle"); deletion goes `deleting` -> `deleted`, and the deleted
      endpoint stays visible in DescribeVpcEndpoints a little while. moto: `available` at once,
      and `deleted` forever. Tests: ec2_endpoint_pending_then_available, ec2_endpoint_delete_lifecycle.
    - ClientToken: AWS returns the same endpoint for a retried CreateVpcEndpoint with the same
      token and parameters, and IdempotentParameterMismatch when the parameters differ (EC2 API
      reference, "Ensuring idempotency"). moto: creates a duplicate. Test: ec2_endpoint_client_token_idempotent.
    - Private DNS: AWS refuses a second private-DNS interface endpoint for the same service in a
      VPC with InvalidParameter "private-dns-enabled cannot be set because there is already a
      conflicting DNS domain for execute-api.<region>.amazonaws.com in the VPC vpc-..." (also
      while the first one is still `deleting`), and private DNS needs the VPC attributes
      enableDnsSupport and enableDnsHostnames (a new VPC has enableDnsHostnames=false).
      ModifyVpcEndpoint PrivateDnsEnabled is applied (moto ignores it) with the same checks.
      moto: no check. Test: ec2_second_private_dns_endpoint_conflicts.
    - Subnets: AWS refuses two subnets in one Availability Zone (CreateVpcEndpoint and
      ModifyVpcEndpoint AddSubnetIds) with DuplicateSubnetsInSameZone "Found another VPC endpoint
      subnet in the availability zone of subnet-...". moto: accepts. ModifyVpcEndpoint keeps
      one network interface per subnet (moto kept the old ones). Test: ec2_endpoint_one_subnet_per_az.
    - ServiceName of another region: AWS InvalidServiceName; moto creates the endpoint.
      Test: ec2_endpoint_service_of_other_region_is_invalid.
    - DnsEntries: AWS names them vpce-<id>-<suffix>.<service>.<region>.vpce.amazonaws.com (regional
      first, then one per AZ); moto used vpce-<id>-<suffix>.com.amazonaws.<region>.<service>.
    - DeleteVpcEndpoints with an unknown id: AWS answers 200 with an `Unsuccessful` item, error
      code InvalidVpcEndpoint.NotFound (EC2 API reference, error codes). moto: empty list.
      Test: ec2_delete_unknown_endpoint_is_unsuccessful_item."""
    from moto.ec2.models import vpcs
    from moto.ec2.responses import vpcs as vpc_responses
    from moto.core.responses import ActionResult

    EP = vpcs.VPCEndPoint

    def get_state(self: Any) -> str:
        deleted_at = self.__dict__.get("_papi_deleted_at")
        t = now()
        if deleted_at is not None:
            return "deleting" if t < deleted_at + ENDPOINT_DELETING else "deleted"
        created = self.__dict__.get("_papi_created")
        if created is not None and t < created + ENDPOINT_PENDING:
            return "pending"
        return self.__dict__.get("_papi_state", "available")

    def set_state(self: Any, value: str) -> None:
        if value == "deleted":
            self.__dict__.setdefault("_papi_deleted_at", now())
        else:
            self.__dict__["_papi_state"] = value

    EP.state = property(get_state, set_state)

    # DescribeVpcEndpoints filter `vpc-endpoint-id` (moto: 500 FilterNotImplementedError).
    orig_filter = EP.get_filter_value

    def get_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
        if filter_name == "vpc-endpoint-id":
            return self.id
        return orig_filter(self, filter_name, method_name)

    EP.get_filter_value = get_filter_value

    orig_init = EP.__init__

    def ep_init(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_init(self, *args, **kwargs)
        if (self.vpc_endpoint_type or "").lower() == "interface":
            self.__dict__["_papi_created"] = now()

    EP.__init__ = ep_init

    B = vpcs.VPCBackend
    orig_create = B.create_vpc_endpoint

    def create_vpc_endpoint(self: Any, vpc_id: str, service_name: str, endpoint_type: str | None,
                            policy_document: str | None, route_table_ids: list[str],
                            subnet_ids: list[str] | None = None, network_interface_ids: Any = None,
                            dns_entries: Any = None, client_token: str | None = None,
                            security_group_ids: list[str] | None = None,
                            tags: dict[str, str] | None = None,
                            private_dns_enabled: bool | None = None) -> Any:
        kwargs = dict(vpc_id=vpc_id, service_name=service_name, endpoint_type=endpoint_type,
                      policy_document=policy_document, route_table_ids=route_table_ids,
                      subnet_ids=subnet_ids, security_group_ids=security_group_ids, tags=tags,
                      private_dns_enabled=private_dns_enabled)
        with _LOCK:
            key = (self.account_id, self.region_name, client_token or "")
            if client_token and key in _TOKENS:
                fp, ep_id = _TOKENS[key]
                if fp != _fingerprint(kwargs):
                    raise _ec2_error(
                        "IdempotentParameterMismatch",
                        "The client token you have provided is associated with a resource that "
                        "has different parameters. Use a different client token.",
                    )
                ep = self.vpc_end_points.get(ep_id)
                if ep is not None:
                    return ep
            interface = (endpoint_type or "").lower() == "interface"
            # AWS: InvalidServiceName "The Vpc Endpoint Service '<name>' does not exist" for a
            # service of another region (spec.region vs the client's region) or an unknown one.
            # moto: creates the endpoint. We accept com.amazonaws.<this region>.<anything>.
            if not service_name.startswith(f"com.amazonaws.{self.region_name}."):
                raise _ec2_error("InvalidServiceName",
                                 f"The Vpc Endpoint Service '{service_name}' does not exist")
            for sg in security_group_ids or []:
                if self.get_security_group_from_id(sg) is None:
                    raise _ec2_error("InvalidGroup.NotFound", f"The security group '{sg}' does not exist")
            if interface:
                _check_one_subnet_per_az(self, list(subnet_ids or []))
            if interface and private_dns_enabled:
                _check_private_dns(self, vpc_id, service_name, exclude=None)
            if interface and not security_group_ids:
                # AWS attaches the VPC's default security group when none is given.
                default = self.get_security_group_from_name("default", vpc_id=vpc_id)
                if default is not None:
                    security_group_ids = [default.id]
            ep = orig_create(self, vpc_id, service_name, endpoint_type, policy_document,
                             route_table_ids, subnet_ids, network_interface_ids, dns_entries,
                             client_token, security_group_ids, tags, private_dns_enabled)
            if interface:
                ep.dns_entries = _dns_entries(self, ep.id, service_name, list(subnet_ids or []))
            if client_token:
                _TOKENS[key] = (_fingerprint(kwargs), ep.id)
            return ep

    B.create_vpc_endpoint = create_vpc_endpoint

    def purge(backend: Any) -> None:
        t = now()
        for ep_id, ep in list(backend.vpc_end_points.items()):
            d = ep.__dict__.get("_papi_deleted_at")
            if d is not None and t >= d + ENDPOINT_DELETING + ENDPOINT_TOMBSTONE:
                backend.vpc_end_points.pop(ep_id, None)

    orig_describe = B.describe_vpc_endpoints

    def describe_vpc_endpoints(self: Any, vpc_end_point_ids: Any, filters: Any = None) -> Any:
        with _LOCK:
            purge(self)
        return orig_describe(self, vpc_end_point_ids, filters)

    B.describe_vpc_endpoints = describe_vpc_endpoints

    def delete_vpc_endpoints(self: Any, vpce_ids: list[str] | None = None) -> list[dict[str, Any]]:
        unsuccessful = []
        with _LOCK:
            purge(self)
            for vpce_id in vpce_ids or []:
                ep = self.vpc_end_points.get(vpce_id)
                if ep is None or ep.state == "deleted":
                    unsuccessful.append({
                        "Error": {"Code": "InvalidVpcEndpoint.NotFound",
                                  "Message": f"The Vpc Endpoint Id '{vpce_id}' does not exist"},
                        "ResourceId": vpce_id,
                    })
                    continue
                if ep.state == "deleting":
                    continue
                if (ep.vpc_endpoint_type or "").lower() == "interface":
                    for eni_id in ep.network_interface_ids:
                        self.enis.pop(eni_id, None)
                else:
                    for rt in ep.route_table_ids:
                        self.delete_route(rt, ep.destination_prefix_list_id)
                ep.state = "deleted"  # -> _papi_deleted_at; reads as `deleting` for a while
        return unsuccessful

    B.delete_vpc_endpoints = delete_vpc_endpoints

    R = vpc_responses.VPCs

    def r_delete_vpc_endpoints(self: Any) -> Any:
        ids = self._get_param("VpcEndpointIds", [])
        if not isinstance(ids, list):
            ids = [ids]
        for i in ids:
            if not re.match(r"^vpce-[0-9a-f]+$", i):
                raise _ec2_error("InvalidVpcEndpointId.Malformed",
                                 f'Invalid Id: "{i}" (expecting "vpce-...")')
        unsuccessful = self.ec2_backend.delete_vpc_endpoints(vpce_ids=ids)
        return ActionResult({"Unsuccessful": unsuccessful})

    R.delete_vpc_endpoints = r_delete_vpc_endpoints

    orig_r_create = R.create_vpc_endpoint

    def r_create_vpc_endpoint(self: Any) -> Any:
        result = orig_r_create(self)
        token = self._get_param("ClientToken")
        if token and isinstance(result, ActionResult):
            try:
                result._result["ClientToken"] = token  # type: ignore[attr-defined]
            except Exception:
                pass
        return result

    R.create_vpc_endpoint = r_create_vpc_endpoint

    orig_r_modify = R.modify_vpc_endpoint

    def r_modify_vpc_endpoint(self: Any) -> Any:
        ep_id = self._get_param("VpcEndpointId")
        with _LOCK:
            eps = self.ec2_backend.describe_vpc_endpoints(vpc_end_point_ids=[ep_id])
            ep = eps[0]
            for sg in self._get_param("AddSecurityGroupIds", []) or []:
                if self.ec2_backend.get_security_group_from_id(sg) is None:
                    raise _ec2_error("InvalidGroup.NotFound", f"The security group '{sg}' does not exist")
            add_subnets = self._get_param("AddSubnetIds", []) or []
            for sn in add_subnets:
                self.ec2_backend.get_subnet(sn)
            if add_subnets and (ep.vpc_endpoint_type or "").lower() == "interface":
                # Strict: checked against the subnets the endpoint has *before* this call's
                # removals (other controllers remove in a separate call first "to avoid
                # DuplicateSubnetsInSameZone"); an operator doing the same is safe on AWS.
                _check_one_subnet_per_az(
                    self.ec2_backend, list(ep.subnet_ids or []) + [x for x in add_subnets if x not in (ep.subnet_ids or [])]
                )
            pde = self._get_param("PrivateDnsEnabled")
            if pde is not None:
                pde = str(pde).lower() == "true"
                if pde and not ep.private_dns_enabled:
                    _check_private_dns(self.ec2_backend, ep.vpc_id, ep.service_name, exclude=ep.id)
            result = orig_r_modify(self)
            if pde is not None:
                ep.private_dns_enabled = pde
            if (ep.vpc_endpoint_type or "").lower() == "interface":
                # keep one ENI per subnet, as AWS does
                have = {}
                for eni_id in list(ep.network_interface_ids):
                    eni = self.ec2_backend.enis.get(eni_id)
                    if eni is None or eni.subnet.id not in (ep.subnet_ids or []):
                        self.ec2_backend.enis.pop(eni_id, None)
                    else:
                        have[eni.subnet.id] = eni_id
                from moto.ec2.utils import random_private_ip
                for sn in ep.subnet_ids or []:
                    if sn not in have:
                        eni = self.ec2_backend.create_network_interface(sn, random_private_ip())
                        have[sn] = eni.id
                ep.network_interface_ids = [have[sn] for sn in ep.subnet_ids or [] if sn in have]
        return result

    R.modify_vpc_endpoint = r_modify_vpc_endpoint


@correction
def ec2_security_group_in_use() -> None:
    """DeleteSecurityGroup on a group still in use fails with DependencyViolation.

    AWS: "resource sg-... has a dependent object" (DependencyViolation) while a VPC endpoint's
    network interfaces use the group, and for a while after DeleteVpcEndpoints until those
    interfaces are gone; likewise while another group's rule references it (EC2 API reference,
    DeleteSecurityGroup; VPC user guide, "Delete a security group"). moto: deletes it.
    PAPI_MOTO_SG_RELEASE_SECONDS (default 0) keeps the group in use that long after the
    endpoint is `deleted`. Test: ec2_security_group_in_use_by_endpoint."""
    from moto.ec2.models import security_groups

    SGB = security_groups.SecurityGroupBackend
    orig = SGB.delete_security_group

    def in_use(backend: Any, group_id: str) -> bool:
        t = now()
        for ep in list(getattr(backend, "vpc_end_points", {}).values()):
            if group_id not in (ep.security_group_ids or []):
                continue
            d = ep.__dict__.get("_papi_deleted_at")
            if d is None or t < d + ENDPOINT_DELETING + SG_RELEASE:
                return True
        for groups in list(backend.groups.values()):
            for g in list(groups.values()):
                if g.id == group_id:
                    continue
                for rule in list(g.ingress_rules) + list(g.egress_rules):
                    if (getattr(rule, "source_group", None) or {}).get("GroupId") == group_id:
                        return True
        return False

    def delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> None:
        gid = group_id
        if gid is None and name:
            g = self.get_security_group_by_name_or_id(name)
            gid = g.id if g else None
        if gid and in_use(self, gid):
            raise _ec2_error("DependencyViolation", f"resource {gid} has a dependent object")
        return orig(self, name=name, group_id=group_id)

    SGB.delete_security_group = delete_security_group


# --------------------------------------------------------------------------------------------
# Lambda
# --------------------------------------------------------------------------------------------


@correction
def lambda_states() -> None:
    """Function `State` Pending -> Active, `LastUpdateStatus` InProgress -> Successful, and
    ResourceConflictException for an update while either is in progress.

    AWS (Lambda developer guide, "Lambda function states"): CreateFunction returns
    State=Pending (StateReason "The function is being created.", StateReasonCode Creating), then
    Active; UpdateFunctionCode/UpdateFunctionConfiguration return LastUpdateStatus=InProgress,
    then Successful; an update while Pending fails with 409 ResourceConflictException "The
    operation cannot be performed at this time. The function is currently in the following
    state: Pending", and while InProgress with "... An update is in progress for resource: <arn>".
    moto: Active and Successful at once, no conflict.
    Tests: lambda_function_pending_then_active, lambda_update_in_progress_conflicts."""
    from moto.awslambda import models
    from moto.awslambda.exceptions import LambdaClientError

    class ResourceConflict(LambdaClientError):
        code = 409

        def __init__(self, message: str) -> None:
            super().__init__("ResourceConflictException", message)

    def _require_s3_object(account_id: str, partition: str, data: dict[str, Any]) -> Any:
        # AWS: CreateFunction/UpdateFunctionCode with an S3 object that does not exist fail with
        # InvalidParameterValueException "Error occurred while GetObject. S3 Error Code:
        # NoSuchKey ...". moto 5.2.5 only catches a missing bucket; a missing key gives an empty
        # function (CodeSize 0).
        from moto.awslambda.exceptions import InvalidParameterValueException
        from moto.s3.models import s3_backends

        bucket, key = data.get("S3Bucket"), data.get("S3Key")
        s3 = s3_backends[account_id][partition]
        try:
            s3.get_bucket(bucket)
        except Exception:
            raise InvalidParameterValueException(
                "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: "
                "The specified bucket does not exist"
            )
        obj = None
        try:
            obj = s3.get_object(bucket, key)
        except Exception:
            obj = None
        if obj is None:
            raise InvalidParameterValueException(
                "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: "
                "The specified key does not exist."
            )
        return obj

    orig_validate = models._validate_s3_bucket_and_key

    def validate_s3(account_id: str, partition: str, data: dict[str, Any]) -> Any:
        _require_s3_object(account_id, partition, data)
        return orig_validate(account_id, partition, data)

    models._validate_s3_bucket_and_key = validate_s3

    F = models.LambdaFunction

    def get_state(self: Any) -> str:
        created = self.__dict__.get("_papi_created")
        if created is not None and now() < created + FUNCTION_PENDING:
            return "Pending"
        return self.__dict__.get("_papi_state", "Active")

    def set_state(self: Any, value: str) -> None:
        self.__dict__["_papi_state"] = value

    F.state = property(get_state, set_state)

    orig_init = F.__init__

    def f_init(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_init(self, *args, **kwargs)
        self.__dict__["_papi_created"] = now()

    F.__init__ = f_init

    def updating(fn: Any) -> bool:
        u = fn.__dict__.get("_papi_updated")
        return u is not None and now() < u + FUNCTION_UPDATE

    orig_get_configuration = F.get_configuration

    def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
        config = orig_get_configuration(self, on_create)
        if config.get("State") == "Pending":
            config["StateReason"] = "The function is being created."
            config["StateReasonCode"] = "Creating"
        if "LastUpdateStatus" in config or self.__dict__.get("_papi_updated") is not None:
            if updating(self):
                config["LastUpdateStatus"] = "InProgress"
                config["LastUpdateStatusReason"] = "The function is being updated."
            else:
                config["LastUpdateStatus"] = "Successful"
        return config

    F.get_configuration = get_configuration

    def guard(fn: Any) -> None:
        if fn.state == "Pending":
            raise ResourceConflict(
                "The operation cannot be performed at this time. The function is currently in "
                "the following state: Pending"
            )
        if updating(fn):
            raise ResourceConflict(
                "The operation cannot be performed at this time. An update is in progress for "
                f"resource: {fn.function_arn}"
            )

    def aws_last_modified() -> str:
        # AWS: "2026-11-24T22:45:42.471+0000"; moto: "2026-11-24T22:45:42.471052000Z".
        from datetime import datetime, timezone

        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"

    def f_init2(self: Any, *args: Any, **kwargs: Any) -> None:
        f_init(self, *args, **kwargs)
        self.last_modified = aws_last_modified()

    F.__init__ = f_init2

    B = models.LambdaBackend
    for name in ("update_function_code", "update_function_configuration"):
        orig = getattr(B, name)

        def wrapped(self: Any, function_name: str, qualifier: str, body: dict[str, Any],
                    _orig: Any = orig, _name: str = name) -> Any:
            with _LOCK:
                fn = self.get_function(function_name, qualifier)
                guard(fn)
                if body.get("DryRun"):
                    return _orig(self, function_name, qualifier, body)
                if "S3Bucket" in body or "S3Key" in body:
                    _require_s3_object(fn.account_id, fn.partition, body)
                prev = fn.__dict__.get("_papi_updated"), fn.last_modified
                fn.__dict__["_papi_updated"] = now()
                fn.last_modified = aws_last_modified()
                try:
                    result = _orig(self, function_name, qualifier, body)
                except Exception:
                    fn.__dict__["_papi_updated"], fn.last_modified = prev
                    raise
                # AWS (UpdateFunctionCode, "Architectures"): the code update also sets the
                # instruction set; moto 5.2.5 never reads it on update, so the function kept its
                # first architecture. Test: part_backend architecture_change_deploys_the_other_package.
                if _name == "update_function_code" and body.get("Architectures"):
                    fn.architectures = body["Architectures"]
                return result

        setattr(B, name, wrapped)


def _statement_in_aws_order(st: dict[str, Any]) -> dict[str, Any]:
    order = ["Sid", "Effect", "Principal", "Action", "Resource", "Condition"]
    out = {k: st[k] for k in order if k in st}
    out.update({k: v for k, v in st.items() if k not in out})
    return out


@correction
def lambda_permissions() -> None:
    """AddPermission / GetPolicy / RemovePermission as on AWS.

    AWS (Lambda API reference, AddPermission/GetPolicy): a second AddPermission with a
    StatementId already in the policy fails with 409 ResourceConflictException "The statement id
    (<sid>) provided already exists. Please provide a new statement id, or remove the existing
    statement."; GetPolicy's `Policy` and AddPermission's `Statement` are minified JSON with keys
    in the order Sid, Effect, Principal, Action, Resource, Condition. RemovePermission of an
    unknown statement is 404 ResourceNotFoundException. moto: appends a duplicate statement and
    pretty-prints JSON with spaces. Test: lambda_permission_duplicate_sid_conflicts."""
    from moto.awslambda import policy as lpolicy, responses as lresponses
    from moto.awslambda.exceptions import LambdaClientError

    class ResourceConflict(LambdaClientError):
        code = 409

        def __init__(self, message: str) -> None:
            super().__init__("ResourceConflictException", message)

    P = lpolicy.Policy
    orig_add = P.add_statement

    def add_statement(self: Any, raw: str, qualifier: str | None = None) -> Any:
        try:
            sid = json.loads(raw).get("StatementId")
        except ValueError:
            sid = None
        with _LOCK:
            if sid and any(s.get("Sid") == sid for s in self.statements):
                raise ResourceConflict(
                    f"The statement id ({sid}) provided already exists. Please provide a new "
                    "statement id, or remove the existing statement."
                )
            return orig_add(self, raw, qualifier)

    P.add_statement = add_statement

    def wire_format(self: Any) -> str:
        p = self.get_policy()
        doc = p["Policy"]
        doc["Statement"] = [_statement_in_aws_order(s) for s in doc["Statement"]]
        p["Policy"] = json.dumps(doc, separators=(",", ":"))
        return json.dumps(p)

    P.wire_format = wire_format

    def add_permission(self: Any) -> Any:
        function_name = unquote(self.path.split("/")[-2])
        qualifier = self.querystring.get("Qualifier", [None])[0]
        statement = self.backend.add_permission(function_name, qualifier, self.body)
        body = json.dumps({"Statement": json.dumps(_statement_in_aws_order(statement), separators=(",", ":"))})
        return 201, {"status": 201}, body

    lresponses.LambdaResponse.add_permission = add_permission


@correction
def lambda_revision_id() -> None:
    """A function has a RevisionId that changes with every change to it; GetPolicy reports it.

    AWS (Lambda API reference, FunctionConfiguration.RevisionId "The latest updated revision of
    the function or alias"; AddPermission/RemovePermission/UpdateFunction* take a RevisionId to
    update only that revision, and GetPolicy's RevisionId is the function's): CreateFunction,
    GetFunction, ListFunctions and the updates report it; UpdateFunctionCode,
    UpdateFunctionConfiguration, AddPermission and RemovePermission each give the function a new
    one. The operator's periodic check relies on it: an unchanged RevisionId in ListFunctions
    means the function and its policy need no GetFunction/GetPolicy. moto 5.2.5: functions have
    no RevisionId at all (only aliases do), and the policy has its own that changes with
    permissions only. Test: lambda_revision_id_follows_every_change."""
    import uuid

    from moto.awslambda import models
    from moto.awslambda import policy as lpolicy

    F = models.LambdaFunction
    B = models.LambdaBackend

    def revision(fn: Any) -> str:
        return fn.__dict__.setdefault("_papi_revision", str(uuid.uuid4()))

    def bump(fn: Any) -> str:
        previous = revision(fn)
        fn.__dict__["_papi_revision"] = str(uuid.uuid4())
        fn.policy.revision = fn.__dict__["_papi_revision"]
        return previous

    orig_config = F.get_configuration

    def get_configuration(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = orig_config(self, *args, **kwargs)
        if isinstance(config, dict):
            config["RevisionId"] = revision(self)
        return config

    F.get_configuration = get_configuration

    for name in ("update_function_code", "update_function_configuration"):
        orig = getattr(B, name)

        def wrapped(self: Any, function_name: str, qualifier: Any, body: Any,
                    _orig: Any = orig) -> Any:
            with _LOCK:
                fn = self.get_function(function_name, qualifier)
                if isinstance(body, dict) and body.get("DryRun"):
                    return _orig(self, function_name, qualifier, body)
                previous = bump(fn)
                try:
                    return _orig(self, function_name, qualifier, body)
                except Exception:
                    fn.__dict__["_papi_revision"] = previous
                    fn.policy.revision = previous
                    raise

        setattr(B, name, wrapped)

    orig_add = B.add_permission

    def add_permission(self: Any, function_name: str, qualifier: Any, raw: str) -> Any:
        with _LOCK:
            fn = self.get_function(function_name, qualifier)
            # A RevisionId in the request is compared with the function's.
            fn.policy.revision = revision(fn)
            result = orig_add(self, function_name, qualifier, raw)
            fn.__dict__["_papi_revision"] = fn.policy.revision
            return result

    B.add_permission = add_permission

    orig_remove = B.remove_permission

    def remove_permission(self: Any, function_name: str, sid: str, revision_id: str = "") -> None:
        with _LOCK:
            fn = self.get_function(function_name)
            fn.policy.revision = revision(fn)
            orig_remove(self, function_name, sid, revision_id)
            bump(fn)

    B.remove_permission = remove_permission

    orig_get_policy = lpolicy.Policy.get_policy

    def get_policy(self: Any) -> dict[str, Any]:
        out = orig_get_policy(self)
        if isinstance(self.parent, F):
            out["RevisionId"] = revision(self.parent)
        return out

    lpolicy.Policy.get_policy = get_policy


# --------------------------------------------------------------------------------------------


def apply_corrections() -> list[str]:
    # Private custom domain names, ACM and Route 53 live in domains.py (same @correction
    # convention, applied after ours: apigw_tags_by_domain_name_arn wraps apigw_tags_by_arn).
    import domains

    # PAPI_MOTO_SKIP_CORRECTIONS=a,b: apply all but these (shows what one correction's test catches).
    skip = {n.strip() for n in os.environ.get("PAPI_MOTO_SKIP_CORRECTIONS", "").split(",") if n.strip()}
    names = []
    for fn in CORRECTIONS + domains.CORRECTIONS:
        if fn.__name__ in skip:
            continue
        fn()
        names.append(fn.__name__)
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: let the kernel pick a free port")
    parser.add_argument("--port-file", default=None, help="write the bound port here once listening")
    parser.add_argument("--no-corrections", action="store_true",
                        default=os.environ.get("PAPI_MOTO_CORRECTIONS", "1") == "0",
                        help="serve plain moto (env PAPI_MOTO_CORRECTIONS=0): shows what each test catches")
    parser.add_argument("--dataplane", default=None, metavar="DIR",
                        help="serve the test bed's DNS and execute-api data plane (DIR/netns.env)")
    args = parser.parse_args(argv)

    import moto
    from werkzeug.serving import make_server
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    names = [] if args.no_corrections else apply_corrections()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    # moto builds some URLs (e.g. S3 locations) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    print(f"papi moto {moto.__version__} on http://{args.host}:{port} with corrections: {', '.join(names) or 'NONE'}",
          file=sys.stderr, flush=True)
    if args.dataplane:
        import dataplane

        dataplane.start(args.dataplane)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)

    def stop(signum: int, frame: Any) -> None:
        # Everything is in memory and disposable: exit at once (a graceful werkzeug shutdown
        # waits for request threads and takes seconds).
        print(f"papi moto: signal {signum}, exiting", file=sys.stderr, flush=True)
        if args.dataplane:
            import dataplane

            dataplane.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
