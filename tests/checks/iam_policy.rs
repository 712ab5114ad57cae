//! `deploy/iam/controller-policy.json` allows exactly what the operator does in AWS.
//!
//! Every AWS operation the operator performed (recorded from its /metrics: a dedicated lifecycle
//! here, plus whatever the other end-to-end tests of the same test bed run recorded in
//! `$PAPI_TESTBED_DIR/aws-operations.txt`) is mapped to the IAM authorization requests AWS makes
//! for it (action, resource ARN, request context: tags on create, the resource's tags, the passed
//! role's service, API Gateway's HTTP method and resource path), and each request is evaluated
//! against the policy's Allow statements (actions, resources, conditions). The test fails on any
//! request the policy does not allow, on policy actions no operation needs, and on an operation in
//! the source the model does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::deploy::repo_path;
use crate::support::iam;
use crate::support::*;
use privateapi_operator::crd::{Architecture, DeletionPolicy};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The requests, evaluated by the tests' IAM evaluator (tests/support/iam.rs).
// ---------------------------------------------------------------------------------------------

/// One authorization request AWS makes for an operation.
#[derive(Debug, Clone)]
struct Request {
    action: &'static str,
    resource: String,
    context: BTreeMap<&'static str, String>,
    /// Only with `spec.adopt`: allowed by controller-policy-adopt.json on top of the base policy.
    adoption: bool,
}

fn request(action: &'static str, resource: impl Into<String>) -> Request {
    Request {
        action,
        resource: resource.into(),
        context: BTreeMap::new(),
        adoption: false,
    }
}

impl Request {
    fn with(mut self, key: &'static str, value: &str) -> Self {
        self.context.insert(key, value.to_string());
        self
    }
    /// Creating a resource with the operator's ownership tags.
    fn tagged_on_create(self) -> Self {
        self.with("aws:RequestTag/privateapi.io/owner", "team-a/orders")
            .with("aws:RequestTag/privateapi.io/cluster", "prod-eu")
    }
    fn adopting(mut self) -> Self {
        self.adoption = true;
        self
    }
    /// Acting on a resource that carries the operator's ownership tags.
    fn on_owned(self) -> Self {
        self.with("aws:ResourceTag/privateapi.io/owner", "team-a/orders")
            .with("aws:ResourceTag/privateapi.io/cluster", "prod-eu")
    }
}

impl Request {
    /// The request as the shared evaluator takes it.
    fn to_iam(&self) -> iam::Request {
        self.context.iter().fold(
            iam::Request::new(self.action, self.resource.clone()),
            |request, (key, value)| request.with(key, value),
        )
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().expect("string list").to_string())
            .collect(),
        other => panic!("expected a string or a list: {other}"),
    }
}

fn read_policy(file: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo_path(&format!("deploy/iam/{file}"))).expect("policy file"),
    )
    .expect("the policy is JSON")
}

/// The base policy; `adopt` adds controller-policy-adopt.json (for `spec.adopt`).
fn policy_with(adopt: bool) -> Value {
    let mut policy = read_policy("controller-policy.json");
    if adopt {
        let extra = read_policy("controller-policy-adopt.json");
        let statements = policy["Statement"].as_array_mut().expect("statements");
        statements.extend(
            extra["Statement"]
                .as_array()
                .expect("statements")
                .iter()
                .cloned(),
        );
    }
    policy
}

fn policy() -> Value {
    policy_with(false)
}

fn allowed(policy: &Value, request: &Request) -> bool {
    iam::evaluate(policy, &request.to_iam()) == iam::Decision::Allow
}

// ---------------------------------------------------------------------------------------------
// The model: SDK operation → the authorization requests AWS makes for it, on the resources the
// operator touches (owned ones tagged and named papi-*; referenced ones the user's).
// ---------------------------------------------------------------------------------------------

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn ec2(resource: &str) -> String {
    format!("arn:aws:ec2:{REGION}:{ACCOUNT}:{resource}")
}

fn apigateway(path: &str) -> Request {
    request("", format!("arn:aws:apigateway:{REGION}::{path}"))
}

fn http(method: &'static str, path: &str) -> Request {
    let mut r = apigateway(path);
    r.action = method;
    r
}

const API: &str = "/restapis/a1b2c3d4e5";
/// A private domain name: its ARN names the account (public ones do not).
const DOMAIN: &str = "/domainnames/orders.internal.example.com+a1b2c3d4e5";
const CERTIFICATE: &str =
    "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666";
const ZONE: &str = "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ";

/// An API Gateway request on a resource of the account (private domain names and their
/// access associations).
fn account_http(method: &'static str, path: &str) -> Request {
    let mut r = request(
        method,
        format!("arn:aws:apigateway:{REGION}:{ACCOUNT}:{path}"),
    );
    r.action = method;
    r
}
const OWNED_FUNCTION: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:papi-team-a-orders-0123456789";
const REFERENCED_FUNCTION: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:team-a-orders-api";
/// A function `spec.adopt.functionName` took over: the user's name, the operator's tags.
const ADOPTED_FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders-handler";

/// Every authorization request of `operation` (`Service:Operation` as in /metrics), over every
/// way the operator uses it; None for an operation the model does not know.
fn requests_of(operation: &str) -> Option<Vec<Request>> {
    let endpoint = ec2("vpc-endpoint/vpce-0123456789abcdef0");
    let group = ec2("security-group/sg-0123456789abcdef0");
    let users_group = ec2("security-group/sg-0fedcba9876543210");
    let vpc = ec2("vpc/vpc-0123456789abcdef0");
    let subnet = ec2("subnet/subnet-0123456789abcdef0");
    let method = format!("{API}/resources/r1s2t3/methods/ANY");
    let lambda_requests = |action: &'static str, owned_only: bool| {
        let mut list = vec![request(action, OWNED_FUNCTION)];
        if !owned_only {
            list.push(request(action, REFERENCED_FUNCTION));
        }
        list
    };
    Some(match operation {
        "STS:GetCallerIdentity" => vec![request("sts:GetCallerIdentity", "*")],
        "EC2:DescribeVpcEndpoints" => vec![request("ec2:DescribeVpcEndpoints", "*")],
        "EC2:DescribeSecurityGroups" => vec![request("ec2:DescribeSecurityGroups", "*")],
        "EC2:DescribeSubnets" => vec![request("ec2:DescribeSubnets", "*")],
        "EC2:DescribeVpcs" => vec![request("ec2:DescribeVpcs", "*")],
        "EC2:CreateVpcEndpoint" => vec![
            request("ec2:CreateVpcEndpoint", ec2("vpc-endpoint/*")).tagged_on_create(),
            request("ec2:CreateVpcEndpoint", vpc.clone()),
            request("ec2:CreateVpcEndpoint", subnet.clone()),
            request("ec2:CreateVpcEndpoint", group.clone()),
            request("ec2:CreateVpcEndpoint", users_group.clone()),
            request("ec2:CreateTags", ec2("vpc-endpoint/*"))
                .tagged_on_create()
                .with("ec2:CreateAction", "CreateVpcEndpoint"),
        ],
        "EC2:CreateSecurityGroup" => vec![
            request("ec2:CreateSecurityGroup", ec2("security-group/*")).tagged_on_create(),
            request("ec2:CreateSecurityGroup", vpc),
            request("ec2:CreateTags", ec2("security-group/*"))
                .tagged_on_create()
                .with("ec2:CreateAction", "CreateSecurityGroup"),
        ],
        "EC2:ModifyVpcEndpoint" => vec![
            request("ec2:ModifyVpcEndpoint", endpoint.clone()).on_owned(),
            request("ec2:ModifyVpcEndpoint", subnet),
            request("ec2:ModifyVpcEndpoint", users_group),
        ],
        // Re-tagging (user tags changed, adoption after a cluster rebuild) of owned resources.
        // Adoption tags the user's endpoint (and its group) as the operator's.
        "EC2:CreateTags" => vec![
            request("ec2:CreateTags", endpoint.clone()).on_owned(),
            request("ec2:CreateTags", group.clone()).on_owned(),
            request("ec2:CreateTags", endpoint.clone())
                .tagged_on_create()
                .adopting(),
            request("ec2:CreateTags", group.clone())
                .tagged_on_create()
                .adopting(),
        ],
        "EC2:DeleteVpcEndpoints" => vec![request("ec2:DeleteVpcEndpoints", endpoint).on_owned()],
        "EC2:AuthorizeSecurityGroupIngress" => {
            vec![request("ec2:AuthorizeSecurityGroupIngress", group.clone()).on_owned()]
        }
        "EC2:RevokeSecurityGroupIngress" => {
            vec![request("ec2:RevokeSecurityGroupIngress", group.clone()).on_owned()]
        }
        "EC2:RevokeSecurityGroupEgress" => {
            vec![request("ec2:RevokeSecurityGroupEgress", group.clone()).on_owned()]
        }
        "EC2:DeleteSecurityGroup" => vec![request("ec2:DeleteSecurityGroup", group).on_owned()],
        "API Gateway:GetRestApis" => vec![http("apigateway:GET", "/restapis")],
        "API Gateway:GetRestApi" => vec![http("apigateway:GET", API).on_owned()],
        "API Gateway:CreateRestApi" => vec![
            http("apigateway:POST", "/restapis").tagged_on_create(),
            // Tags in the create request.
            http(
                "apigateway:PUT",
                "/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Frestapis%2Fa1b2c3d4e5",
            ),
        ],
        "API Gateway:UpdateRestApi" => vec![http("apigateway:PATCH", API).on_owned()],
        "API Gateway:DeleteRestApi" => vec![http("apigateway:DELETE", API).on_owned()],
        // REST APIs, and private domain names (spec.domain).
        "API Gateway:TagResource" => vec![
            http(
                "apigateway:PUT",
                "/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Frestapis%2Fa1b2c3d4e5",
            ),
            http(
                "apigateway:PUT",
                &format!(
                    "/tags/arn%3Aaws%3Aapigateway%3A{REGION}%3A{ACCOUNT}%3A%2Fdomainnames%2Forders.internal.example.com%2Ba1b2c3d4e5"
                ),
            ),
        ],
        "API Gateway:GetResources" => {
            vec![http("apigateway:GET", &format!("{API}/resources")).on_owned()]
        }
        "API Gateway:CreateResource" => {
            vec![http("apigateway:POST", &format!("{API}/resources/p1a2r3")).on_owned()]
        }
        "API Gateway:DeleteResource" => {
            vec![http("apigateway:DELETE", &format!("{API}/resources/r1s2t3")).on_owned()]
        }
        "API Gateway:PutMethod" => vec![http("apigateway:PUT", &method).on_owned()],
        "API Gateway:DeleteMethod" => vec![http("apigateway:DELETE", &method).on_owned()],
        "API Gateway:PutIntegration" => {
            vec![http("apigateway:PUT", &format!("{method}/integration")).on_owned()]
        }
        "API Gateway:GetIntegration" => {
            vec![http("apigateway:GET", &format!("{method}/integration")).on_owned()]
        }
        "API Gateway:CreateDeployment" => {
            vec![http("apigateway:POST", &format!("{API}/deployments")).on_owned()]
        }
        "API Gateway:GetDeployments" => {
            vec![http("apigateway:GET", &format!("{API}/deployments")).on_owned()]
        }
        "API Gateway:GetDeployment" => {
            vec![http("apigateway:GET", &format!("{API}/deployments/d1e2f3")).on_owned()]
        }
        "API Gateway:UpdateDeployment" => {
            vec![http("apigateway:PATCH", &format!("{API}/deployments/d1e2f3")).on_owned()]
        }
        "API Gateway:DeleteDeployment" => {
            vec![http("apigateway:DELETE", &format!("{API}/deployments/d1e2f3")).on_owned()]
        }
        "API Gateway:GetStages" => {
            vec![http("apigateway:GET", &format!("{API}/stages")).on_owned()]
        }
        "API Gateway:DeleteStage" => {
            vec![http("apigateway:DELETE", &format!("{API}/stages/prod")).on_owned()]
        }
        "Lambda:CreateFunction" => vec![
            request("lambda:CreateFunction", OWNED_FUNCTION).tagged_on_create(),
            // Tags in the create request need TagResource too.
            request("lambda:TagResource", OWNED_FUNCTION),
            request(
                "iam:PassRole",
                format!("arn:aws:iam::{ACCOUNT}:role/papi-backend"),
            )
            .with("iam:PassedToService", "lambda.amazonaws.com"),
            // backend.code from S3: Lambda reads the object with the caller's permissions.
            request(
                "s3:GetObject",
                "arn:aws:s3:::team-a-artifacts/orders/v1.zip",
            ),
            request(
                "s3:GetObjectVersion",
                "arn:aws:s3:::team-a-artifacts/orders/v1.zip",
            ),
        ],
        "Lambda:UpdateFunctionCode" => vec![
            request("lambda:UpdateFunctionCode", OWNED_FUNCTION),
            request("lambda:UpdateFunctionCode", ADOPTED_FUNCTION)
                .on_owned()
                .adopting(),
            request(
                "s3:GetObject",
                "arn:aws:s3:::team-a-artifacts/orders/v2.zip",
            ),
            request(
                "s3:GetObjectVersion",
                "arn:aws:s3:::team-a-artifacts/orders/v2.zip",
            ),
        ],
        "Lambda:UpdateFunctionConfiguration" => vec![
            request("lambda:UpdateFunctionConfiguration", OWNED_FUNCTION),
            request("lambda:UpdateFunctionConfiguration", ADOPTED_FUNCTION)
                .on_owned()
                .adopting(),
            request(
                "iam:PassRole",
                format!("arn:aws:iam::{ACCOUNT}:role/papi-orders"),
            )
            .with("iam:PassedToService", "lambda.amazonaws.com"),
        ],
        "Lambda:TagResource" => vec![
            request("lambda:TagResource", OWNED_FUNCTION),
            request("lambda:TagResource", ADOPTED_FUNCTION)
                .tagged_on_create()
                .adopting(),
        ],
        "Lambda:DeleteFunction" => vec![
            request("lambda:DeleteFunction", OWNED_FUNCTION),
            request("lambda:DeleteFunction", ADOPTED_FUNCTION)
                .on_owned()
                .adopting(),
        ],
        "Lambda:GetFunction" => lambda_requests("lambda:GetFunction", false),
        "Lambda:GetPolicy" => lambda_requests("lambda:GetPolicy", false),
        // The periodic checks' listing of every function of the region (no resource-level
        // permission: Resource "*").
        "Lambda:ListFunctions" => vec![request("lambda:ListFunctions", "*")],
        "Lambda:AddPermission" => lambda_requests("lambda:AddPermission", false)
            .into_iter()
            .map(|r| r.with("lambda:Principal", "apigateway.amazonaws.com"))
            .collect(),
        "Lambda:RemovePermission" => lambda_requests("lambda:RemovePermission", false),
        // Private custom domain names (spec.domain).
        "API Gateway:GetDomainNames" => vec![http("apigateway:GET", "/domainnames")],
        "API Gateway:GetDomainName" => vec![account_http("apigateway:GET", DOMAIN)],
        "API Gateway:CreateDomainName" => {
            vec![http("apigateway:POST", "/domainnames").tagged_on_create()]
        }
        "API Gateway:UpdateDomainName" => {
            vec![account_http("apigateway:PATCH", DOMAIN).on_owned()]
        }
        "API Gateway:DeleteDomainName" => {
            vec![account_http("apigateway:DELETE", DOMAIN).on_owned()]
        }
        "API Gateway:GetBasePathMappings" => vec![account_http(
            "apigateway:GET",
            &format!("{DOMAIN}/basepathmappings"),
        )],
        "API Gateway:CreateBasePathMapping" => vec![
            account_http("apigateway:POST", &format!("{DOMAIN}/basepathmappings")).on_owned(),
        ],
        "API Gateway:DeleteBasePathMapping" => vec![
            account_http("apigateway:DELETE", &format!("{DOMAIN}/basepathmappings/v1"))
                .on_owned(),
        ],
        "API Gateway:GetDomainNameAccessAssociations" => vec![account_http(
            "apigateway:GET",
            "/domainnameaccessassociations",
        )],
        "API Gateway:CreateDomainNameAccessAssociation" => vec![
            account_http("apigateway:POST", "/domainnameaccessassociations").tagged_on_create(),
        ],
        "API Gateway:DeleteDomainNameAccessAssociation" => vec![
            account_http(
                "apigateway:DELETE",
                "/domainnameaccessassociations/domainname/orders.internal.example.com+a1b2c3d4e5/vpcesource/vpce-0123456789abcdef0",
            )
            .on_owned(),
        ],
        "ACM:DescribeCertificate" => vec![request("acm:DescribeCertificate", CERTIFICATE)],
        "Route 53:GetHostedZone" => vec![request("route53:GetHostedZone", ZONE)],
        "Route 53:ListResourceRecordSets" => {
            vec![request("route53:ListResourceRecordSets", ZONE)]
        }
        "Route 53:ChangeResourceRecordSets" => {
            vec![request("route53:ChangeResourceRecordSets", ZONE)]
        }
        _ => return None,
    })
}

/// `Service:Operation` of every AWS call in the operator's source (`.aws(SERVICE, "Op")`).
fn operations_in_source() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // The parts, the account lookup and the periodic checks' shared listings.
    let mut files = vec![repo_path("src/aws.rs")];
    let mut dirs = vec![
        repo_path("src/parts"),
        repo_path("src/observed"),
        repo_path("src/model"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    // A part's SERVICE is defined in its file, or in the `mod.rs` of a directory above it (a
    // part split into modules).
    let service_of = |file: &std::path::Path| {
        let defined_in = |path: &std::path::Path| {
            std::fs::read_to_string(path).ok().and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("const SERVICE: &str = \""))
                    .map(|rest| rest.trim_end_matches("\";").to_string())
            })
        };
        defined_in(file).or_else(|| {
            file.ancestors()
                .skip(1)
                .take_while(|dir| dir.starts_with(repo_path("src/parts")))
                .find_map(|dir| defined_in(&dir.join("mod.rs")))
        })
    };
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        let service = service_of(&file);
        for (i, _) in text.match_indices(".aws(") {
            let args = &text[i + 5..];
            let args = args.split(')').next().unwrap_or_default();
            let mut parts = args.split(',').map(|p| p.trim().trim_matches('"'));
            let (Some(svc), Some(op)) = (parts.next(), parts.next()) else {
                continue;
            };
            let svc = if svc == "SERVICE" {
                service.clone().expect("SERVICE const in the file")
            } else {
                svc.to_string()
            };
            // The SDKs' service names, as /metrics reports them.
            let svc = if svc == "APIGateway" {
                "API Gateway".to_string()
            } else {
                svc
            };
            found.insert(format!("{svc}:{op}"));
        }
    }
    found
}

/// The requests of `operations` the policies refuse, as readable lines: adoption requests
/// against the base policy plus the adoption policy, all others against the base policy alone.
fn refused(operations: &BTreeSet<String>) -> Vec<String> {
    let (base, with_adopt) = (policy_with(false), policy_with(true));
    let mut refused = Vec::new();
    for operation in operations {
        let requests = requests_of(operation)
            .unwrap_or_else(|| panic!("the model does not know {operation}: add it"));
        for r in requests {
            let policy = if r.adoption { &with_adopt } else { &base };
            if !allowed(policy, &r) {
                refused.push(format!(
                    "{operation}{}: {} on {} with {:?}",
                    if r.adoption { " (adopting)" } else { "" },
                    r.action,
                    r.resource,
                    r.context
                ));
            }
        }
    }
    refused
}

fn policy_actions(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect()
}

fn needed_actions(operations: &BTreeSet<String>) -> BTreeSet<String> {
    operations
        .iter()
        .filter_map(|op| requests_of(op))
        .flatten()
        .map(|r| r.action.to_string())
        .collect()
}

#[test]
fn the_evaluator_refuses_what_the_conditions_exclude() {
    let policy = policy();
    // Sanity of the model against the policy, without AWS.
    let delete = request(
        "ec2:DeleteVpcEndpoints",
        ec2("vpc-endpoint/vpce-0123456789abcdef0"),
    );
    assert!(!allowed(&policy, &delete), "an endpoint that is not ours");
    assert!(allowed(&policy, &delete.clone().on_owned()));
    let create = request("ec2:CreateVpcEndpoint", ec2("vpc-endpoint/*"));
    assert!(!allowed(&policy, &create), "an untagged create");
    assert!(allowed(&policy, &create.tagged_on_create()));
    let tag_other = request("ec2:CreateTags", ec2("vpc-endpoint/vpce-0aaaaaaaaaaaaaaaa"));
    assert!(
        !allowed(&policy, &tag_other),
        "tagging someone else's endpoint"
    );
    let pass = request(
        "iam:PassRole",
        format!("arn:aws:iam::{ACCOUNT}:role/papi-backend"),
    );
    assert!(!allowed(
        &policy,
        &pass
            .clone()
            .with("iam:PassedToService", "ec2.amazonaws.com")
    ));
    assert!(allowed(
        &policy,
        &pass.with("iam:PassedToService", "lambda.amazonaws.com")
    ));
    let admin = request("iam:PassRole", format!("arn:aws:iam::{ACCOUNT}:role/admin"))
        .with("iam:PassedToService", "lambda.amazonaws.com");
    assert!(!allowed(&policy, &admin), "only papi-* roles");
    assert!(!allowed(
        &policy,
        &request("lambda:DeleteFunction", REFERENCED_FUNCTION)
    ));
    assert!(!allowed(
        &policy,
        &request("lambda:AddPermission", REFERENCED_FUNCTION)
            .with("lambda:Principal", "s3.amazonaws.com")
    ));
    assert!(!allowed(
        &policy,
        &http("apigateway:DELETE", "/restapis/zzz"),
    ));
    // Public domain names (no account in their ARN) are never the operator's, even tagged;
    // private ones are only when tagged as its own.
    assert!(!allowed(
        &policy,
        &http("apigateway:DELETE", "/domainnames/api.example.com").on_owned(),
    ));
    assert!(!allowed(
        &policy,
        &account_http("apigateway:DELETE", DOMAIN),
    ));
    assert!(allowed(
        &policy,
        &account_http("apigateway:DELETE", DOMAIN).on_owned(),
    ));
    assert!(!allowed(&policy, &request("ec2:DeleteVpc", "*")));
}

#[test]
fn adoption_needs_the_adoption_policy_and_nothing_else_does() {
    let base = policy();
    let adopted_tag = request("lambda:TagResource", ADOPTED_FUNCTION).tagged_on_create();
    assert!(
        !allowed(&base, &adopted_tag),
        "the base policy does not adopt"
    );
    assert!(allowed(&policy_with(true), &adopted_tag));
    let untagged = request("lambda:DeleteFunction", ADOPTED_FUNCTION);
    assert!(
        !allowed(&policy_with(true), &untagged),
        "only functions tagged as the operator's"
    );
    // Every non-adoption request of every operation is allowed by the base policy alone.
    for operation in operations_in_source() {
        for r in requests_of(&operation).unwrap_or_default() {
            if !r.adoption {
                assert!(allowed(&base, &r), "{operation}: {r:?}");
            }
        }
    }
}

#[test]
fn every_operation_in_the_source_is_allowed_and_every_allowed_action_is_needed() {
    let operations = operations_in_source();
    assert!(operations.len() >= 40, "{operations:?}");
    let refused = refused(&operations);
    assert!(
        refused.is_empty(),
        "the policy refuses:\n{}",
        refused.join("\n")
    );
    let unneeded: Vec<String> = policy_actions(&policy_with(true))
        .difference(&needed_actions(&operations))
        .cloned()
        .collect();
    assert!(
        unneeded.is_empty(),
        "the policy allows actions no operation needs: {unneeded:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The operations the operator really performed.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_the_operator_performed_is_allowed() {
    let mut world = World::new("iam")
        .cluster_prefix("iam")
        .vpc(44)
        .operator()
        .await;
    let (namespace, aws, vpc) = (&world.namespace, &world.aws, world.vpc());
    let operator = world.operator();
    let timeout = Duration::from_secs(120);

    // Owned endpoint + built-in backend; then updates of the function, the security group's
    // sources, tags and the API's policy.
    world.seed("owned").apply();
    let owned = wait_ready(namespace, "owned", timeout);
    patch_spec(
        namespace,
        "owned",
        json!({
            "backend": {"builtin": {"message": "v2"}, "memoryMiB": 512},
            "endpoint": {"create": {"allowedCidrs": ["10.44.0.0/16"]}},
            "tags": {"team": "payments"}
        }),
    );
    wait_ready(namespace, "owned", timeout);

    // The user's endpoint and function.
    // (The operator's own endpoint in this VPC has private DNS; only one may: this one has none.)
    let endpoint = make::execute_api_endpoint(aws, vpc).await;
    let function = make::handler_function(aws, &unique("users-fn")).await;
    PrivateApiManifest::new(namespace, "referenced")
        .region(REGION)
        .endpoint_id(&endpoint)
        .function_arn(&function)
        .deletion_policy(DeletionPolicy::Retain)
        .apply();
    wait_ready(namespace, "referenced", timeout);
    // Reuse of the owned object's endpoint by another API.
    let owned_endpoint = owned["status"]["vpcEndpointId"]
        .as_str()
        .expect("endpoint id");
    PrivateApiManifest::new(namespace, "shared")
        .region(REGION)
        .endpoint_id(owned_endpoint)
        .architecture(Architecture::X86_64)
        .apply();
    wait_ready(namespace, "shared", timeout);

    // Delete: Retain keeps (the user's endpoint and function, and the API), the others clean up;
    // the shared endpoint's owner goes last, once no other API uses its endpoint.
    for name in ["shared", "referenced", "owned"] {
        world.delete_and_wait(name, timeout);
    }
    let performed: BTreeSet<String> = operator.aws_calls().by_operation.into_keys().collect();
    world.stop_operator();

    let policy = policy();
    let mut all = performed.clone();
    let elsewhere = aws_operations::recorded();
    all.extend(elsewhere.iter().cloned());
    eprintln!(
        "operations: {} in this lifecycle, {} in total with the other tests' ({} recorded)",
        performed.len(),
        all.len(),
        elsewhere.len()
    );
    let refused = refused(&all);
    assert!(
        refused.is_empty(),
        "the policy refuses what the operator did:\n{}",
        refused.join("\n")
    );
    for core in [
        "EC2:CreateVpcEndpoint",
        "EC2:CreateSecurityGroup",
        "EC2:DeleteVpcEndpoints",
        "EC2:DeleteSecurityGroup",
        "API Gateway:CreateRestApi",
        "API Gateway:DeleteRestApi",
        "API Gateway:CreateDeployment",
        "Lambda:CreateFunction",
        "Lambda:UpdateFunctionConfiguration",
        "Lambda:DeleteFunction",
        "Lambda:AddPermission",
    ] {
        assert!(
            performed.contains(core),
            "the lifecycle performed {core}: {performed:?}"
        );
    }
    let unused: Vec<String> = policy_actions(&policy)
        .difference(&needed_actions(&all))
        .cloned()
        .collect();
    eprintln!("policy actions no recorded operation used: {unused:?}");
    let not_seen: Vec<String> = operations_in_source()
        .into_iter()
        .filter(|op| !all.contains(op))
        .collect();
    eprintln!("operations in the source not performed in this run: {not_seen:?}");
}
