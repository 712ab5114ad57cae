//! The endpoint part (`src/parts/endpoint/`) against the corrected moto server, through the
//! operator's real SDK clients: create, steady state, drift, spec changes, `endpoint.id`,
//! invalid specs and cleanup.
//!
//! Every test makes its own VPC (DNS hostnames on, three subnets in three AZs) and its own owner
//! (a unique object name), so the tests run in parallel on one server. Each test has its own
//! `Metrics`, so AWS call counts are per test.
//!
//! Run through the test bed: `make test`, or `bash testbed/with-testbed.sh cargo test --test
//! part_endpoint`, or by hand: `testbed/moto/start.sh DIR; source DIR/moto.env; PAPI_TESTBED=1
//! cargo test --test parts endpoint::`.

use crate::support::inspect::{ec2_tags, endpoint_group_ids};
use crate::support::{PrivateApiManifest, TestVpc, add_subnet, make_vpc_in_azs, poll, unique};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, ResourceType, SecurityGroup, Tag, TagSpecification, VpcEndpoint,
    VpcEndpointType,
};
use privateapi_operator::aws::RegionClients;
use privateapi_operator::crd::{PrivateApiSpec, PrivateApiStatus};
use privateapi_operator::error::Error;
use privateapi_operator::identity::Owner;
use privateapi_operator::metrics::{CallCounts, Metrics};
use privateapi_operator::parts::endpoint::{
    self, DesiredEndpoint, EndpointInfo, canonical_create_params,
};
use privateapi_operator::parts::{Cleanup, Outcome, PartContext, Settings};

const REGION: &str = "us-east-1";
const EXECUTE_API: &str = "com.amazonaws.us-east-1.execute-api";
const CLUSTER: &str = "endpoint-tests";

// ---------------------------------------------------------------------------------------------
// test bed
// ---------------------------------------------------------------------------------------------

struct Bed {
    aws: Arc<RegionClients>,
    metrics: Arc<Metrics>,
}

impl Bed {
    fn ec2(&self) -> &aws_sdk_ec2::Client {
        &self.aws.ec2
    }
}

async fn bed() -> Bed {
    let (aws, metrics) = crate::support::aws_counted().await;
    Bed { aws, metrics }
}

/// A test's own VPC: DNS support and hostnames on (private DNS needs both), subnets in
/// us-east-1a/b/c, a "client" group (allowed to connect) and an "extra" group (attached as is).
/// A test's own VPC, with subnets in three AZs.
async fn network(bed: &Bed, octet: u8) -> TestVpc {
    make_vpc_in_azs(
        bed.ec2(),
        octet,
        &["us-east-1a", "us-east-1b", "us-east-1c"],
    )
    .await
}

fn owner(test: &str) -> Owner {
    Owner {
        cluster: CLUSTER.into(),
        namespace: "ns".into(),
        name: unique(test),
        uid: unique("uid"),
    }
}

/// The spec of the endpoint tests: the builtin backend, tag `team: endpoint-tests`; the endpoint
/// is each test's.
fn spec() -> PrivateApiManifest {
    PrivateApiManifest::unnamed().tag("team", "endpoint-tests")
}

/// `endpoint.id`.
fn id_spec(vpce: &str) -> PrivateApiSpec {
    spec().endpoint_id(vpce).typed_spec()
}

/// `endpoint.create` in the first two subnets, HTTPS from the client group, the extra group
/// attached, private DNS on.
fn create_base(net: &TestVpc) -> PrivateApiManifest {
    spec()
        .endpoint_create(net)
        .subnets(&net.subnet_ids[..2])
        .security_groups([&net.extra_sg_id])
}

/// [`create_base`], and HTTPS from the VPC's first /24.
fn create_spec(net: &TestVpc) -> PrivateApiSpec {
    create_base(net)
        .allowed_cidrs([format!("10.{}.0.0/24", net.second_octet)])
        .typed_spec()
}

/// AWS calls made by one step.
#[derive(Debug, Default)]
struct Calls {
    reads: u64,
    writes: u64,
    by_operation: BTreeMap<String, u64>,
}

impl Calls {
    fn between(before: &CallCounts, after: &CallCounts) -> Self {
        let by_operation = after
            .by_operation
            .iter()
            .filter_map(|(op, n)| {
                let d = n - before.by_operation.get(op).copied().unwrap_or(0);
                (d > 0).then(|| (op.clone(), d))
            })
            .collect();
        Self {
            reads: after.reads - before.reads,
            writes: after.writes - before.writes,
            by_operation,
        }
    }

    fn count(&self, operation: &str) -> u64 {
        self.by_operation
            .get(&format!("EC2:{operation}"))
            .copied()
            .unwrap_or(0)
    }
}

/// One object: its spec, its status (updated with the IDs each reconcile returns, as the
/// reconciler does) and its owner.
struct Object {
    bed: Bed,
    owner: Owner,
    spec: PrivateApiSpec,
    status: PrivateApiStatus,
    settings: Settings,
}

impl Object {
    fn new(bed: Bed, test: &str, spec: PrivateApiSpec) -> Self {
        Self {
            bed,
            owner: owner(test),
            spec,
            status: PrivateApiStatus::default(),
            settings: Settings {
                cluster_name: CLUSTER.into(),
                ..Default::default()
            },
        }
    }

    fn ctx(&self) -> PartContext<'_> {
        PartContext {
            aws: &self.bed.aws,
            owner: &self.owner,
            spec: &self.spec,
            status: &self.status,
            settings: &self.settings,
            reader: privateapi_operator::observed::Reader::direct(&self.bed.aws),
        }
    }

    fn ec2(&self) -> &aws_sdk_ec2::Client {
        self.bed.ec2()
    }

    async fn reconcile(&mut self) -> (Result<Outcome<EndpointInfo>, Error>, Calls) {
        let before = self.bed.metrics.aws_call_counts();
        let ctx = self.ctx();
        let future = endpoint::reconcile(&ctx);
        // The controller runs reconciles on a multi-threaded runtime: the future must be Send.
        assert_send(&future);
        let result = future.await;
        let calls = Calls::between(&before, &self.bed.metrics.aws_call_counts());
        if let Ok(outcome) = &result {
            self.status.vpc_endpoint_id = Some(outcome.value.vpc_endpoint_id.clone());
            self.status.security_group_id = outcome.value.security_group_id.clone();
        }
        (result, calls)
    }

    /// Reconcile, expecting success.
    async fn reconciled(&mut self) -> (Outcome<EndpointInfo>, Calls) {
        let (result, calls) = self.reconcile().await;
        match result {
            Ok(outcome) => (outcome, calls),
            Err(err) => panic!("reconcile failed: {err}"),
        }
    }

    /// Reconcile until the part is ready (the corrected moto keeps new endpoints `pending` for
    /// about two seconds). Returns the ready outcome and how many not-ready reconciles came first.
    async fn until_ready(&mut self) -> (Outcome<EndpointInfo>, usize) {
        let mut pending = 0;
        let ready = poll::until_async(
            "the endpoint part ready",
            Duration::from_secs(30),
            Duration::from_millis(250),
            async || {
                let (outcome, calls) = self.reconciled().await;
                if outcome.state.ready {
                    return Ok(outcome);
                }
                assert_eq!(outcome.state.reason, "Pending", "{:?}", outcome.state);
                assert!(!outcome.value.available);
                if pending > 0 {
                    assert_eq!(calls.writes, 0, "waiting makes no writes: {calls:?}");
                }
                pending += 1;
                Err(format!("{:?}", outcome.state))
            },
        )
        .await;
        (ready, pending)
    }

    async fn cleanup(&self) -> (Cleanup, Calls) {
        let before = self.bed.metrics.aws_call_counts();
        let ctx = self.ctx();
        let future = endpoint::cleanup_owned(&ctx);
        assert_send(&future);
        let result = future.await;
        let calls = Calls::between(&before, &self.bed.metrics.aws_call_counts());
        match result {
            Ok(cleanup) => (cleanup, calls),
            Err(err) => panic!("cleanup_owned failed: {err}"),
        }
    }

    /// cleanup_owned until done. Returns how many calls said "not done yet".
    async fn cleanup_until_done(&self) -> usize {
        let mut not_done = 0;
        poll::until_async(
            "cleanup done",
            Duration::from_secs(40),
            Duration::from_millis(500),
            async || {
                let (cleanup, _) = self.cleanup().await;
                if !cleanup.done {
                    not_done += 1;
                }
                cleanup.done
            },
        )
        .await;
        not_done
    }
}

fn assert_send<T: Send>(_: &T) {}

fn invalid_spec<T: std::fmt::Debug>(result: Result<T, Error>) -> (String, String) {
    match result {
        Err(Error::InvalidSpec { field, message }) => (field, message),
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

/// A spec refused: `InvalidSpec` (wrong in itself) or, when the message says the reference does
/// not exist, `ReferenceNotFound` (retried: it may still appear).
fn refused<T: std::fmt::Debug>(result: Result<T, Error>) -> (String, String) {
    match result {
        Err(Error::ReferenceNotFound { field, message }) => {
            assert!(message.contains("does not exist"), "{message}");
            (field, message)
        }
        Err(Error::InvalidSpec { field, message }) => {
            assert!(
                !message.contains("does not exist"),
                "not found is ReferenceNotFound: {message}"
            );
            (field, message)
        }
        other => panic!("expected InvalidSpec or ReferenceNotFound, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// reading AWS directly
// ---------------------------------------------------------------------------------------------

async fn describe_endpoint(ec2: &aws_sdk_ec2::Client, id: &str) -> VpcEndpoint {
    ec2.describe_vpc_endpoints()
        .vpc_endpoint_ids(id)
        .send()
        .await
        .expect("DescribeVpcEndpoints")
        .vpc_endpoints()
        .first()
        .cloned()
        .expect("the endpoint")
}

fn state(endpoint: &VpcEndpoint) -> String {
    endpoint
        .state()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

/// Endpoints of the VPC that are not on their way out.
async fn live_endpoints_in(ec2: &aws_sdk_ec2::Client, vpc: &str) -> Vec<VpcEndpoint> {
    ec2.describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .send()
        .await
        .expect("DescribeVpcEndpoints")
        .vpc_endpoints()
        .iter()
        .filter(|e| !matches!(state(e).as_str(), "deleting" | "deleted"))
        .cloned()
        .collect()
}

async fn describe_group(ec2: &aws_sdk_ec2::Client, id: &str) -> Option<SecurityGroup> {
    match ec2.describe_security_groups().group_ids(id).send().await {
        Ok(out) => out.security_groups().first().cloned(),
        Err(err) => {
            let code = aws_sdk_ec2::error::ProvideErrorMetadata::code(&err);
            assert_eq!(code, Some("InvalidGroup.NotFound"), "{err:?}");
            None
        }
    }
}

async fn groups_named(ec2: &aws_sdk_ec2::Client, vpc: &str, name: &str) -> usize {
    ec2.describe_security_groups()
        .filters(Filter::builder().name("group-name").values(name).build())
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .send()
        .await
        .expect("DescribeSecurityGroups")
        .security_groups()
        .len()
}

/// Rules as "<protocol> <from>-<to> <source>", one per source (written independently of the
/// operator's own flattening).
fn rule_strings(permissions: &[IpPermission]) -> BTreeSet<String> {
    let mut rules = BTreeSet::new();
    for p in permissions {
        let head = format!(
            "{} {}-{}",
            p.ip_protocol().unwrap_or("?"),
            p.from_port().unwrap_or(-1),
            p.to_port().unwrap_or(-1)
        );
        for r in p.ip_ranges() {
            rules.insert(format!("{head} {}", r.cidr_ip().unwrap_or("?")));
        }
        for r in p.ipv6_ranges() {
            rules.insert(format!("{head} {}", r.cidr_ipv6().unwrap_or("?")));
        }
        for g in p.user_id_group_pairs() {
            rules.insert(format!("{head} {}", g.group_id().unwrap_or("?")));
        }
        for l in p.prefix_list_ids() {
            rules.insert(format!("{head} {}", l.prefix_list_id().unwrap_or("?")));
        }
    }
    rules
}

fn https_rules(sources: &[&str]) -> BTreeSet<String> {
    sources.iter().map(|s| format!("tcp 443-443 {s}")).collect()
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

/// An execute-api interface endpoint made outside the operator (no ownership tags).
async fn foreign_endpoint(bed: &Bed, net: &TestVpc, service: &str, private_dns: bool) -> String {
    bed.ec2()
        .create_vpc_endpoint()
        .vpc_endpoint_type(VpcEndpointType::Interface)
        .vpc_id(&net.vpc_id)
        .service_name(service)
        .subnet_ids(&net.subnet_ids[2])
        .security_group_ids(&net.extra_sg_id)
        .private_dns_enabled(private_dns)
        .send()
        .await
        .expect("CreateVpcEndpoint")
        .vpc_endpoint
        .and_then(|e| e.vpc_endpoint_id)
        .expect("endpoint ID")
}

async fn wait_available(ec2: &aws_sdk_ec2::Client, id: &str) {
    poll::until_async(
        &format!("{id} available"),
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || state(&describe_endpoint(ec2, id).await) == "available",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// endpoint.create
// ---------------------------------------------------------------------------------------------

/// From nothing: the group with exactly the specified rules, the endpoint with its subnets,
/// groups, private DNS, tags and the ClientToken the operator derives.
#[tokio::test]
async fn creates_group_and_endpoint_from_nothing() {
    let bed = bed().await;
    let net = network(&bed, 101).await;
    let mut obj = Object::new(bed, "create", create_spec(&net));

    let (outcome, calls) = obj.reconciled().await;
    println!("create: {calls:?}");
    let info = &outcome.value;
    let sg = info.security_group_id.clone().expect("managed group");
    assert!(info.owned);
    assert!(info.vpc_endpoint_id.starts_with("vpce-"));
    assert!(info.private_dns);
    // The corrected moto makes a new endpoint `pending` first.
    assert!(!outcome.state.ready);
    assert!(!info.available);
    assert_eq!(outcome.state.reason, "Pending");
    assert_eq!(
        outcome.state.message,
        format!(
            "waiting for {} to become available (it is pending)",
            info.vpc_endpoint_id
        )
    );
    let actions: Vec<(&str, String)> = outcome
        .changes
        .iter()
        .map(|c| (c.action, c.resource.clone()))
        .collect();
    assert!(
        actions.contains(&("Created", format!("security group {sg}"))),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("Created", format!("VPC endpoint {}", info.vpc_endpoint_id))),
        "{actions:?}"
    );
    // The smallest set of writes: the group, its ingress, dropping its default egress, the
    // endpoint. References were checked before anything was created.
    assert_eq!(calls.count("CreateSecurityGroup"), 1);
    assert_eq!(calls.count("AuthorizeSecurityGroupIngress"), 1);
    assert_eq!(calls.count("RevokeSecurityGroupEgress"), 1);
    assert_eq!(calls.count("CreateVpcEndpoint"), 1);
    assert_eq!(calls.writes, 4, "{calls:?}");
    for read in ["DescribeVpcs", "DescribeSubnets"] {
        assert_eq!(calls.count(read), 1, "{read}: {calls:?}");
    }

    // The group.
    let group = describe_group(obj.ec2(), &sg).await.expect("group exists");
    assert_eq!(
        group.group_name(),
        Some(obj.owner.security_group_name().as_str())
    );
    assert_eq!(group.vpc_id(), Some(net.vpc_id.as_str()));
    assert_eq!(
        group.description().unwrap_or_default(),
        format!(
            "privateapi-operator: HTTPS to the execute-api endpoint of ns/{}",
            obj.owner.name
        )
    );
    assert_eq!(
        rule_strings(group.ip_permissions()),
        https_rules(&[
            &format!("10.{}.0.0/24", net.second_octet),
            &net.client_sg_id
        ])
    );
    assert!(
        group.ip_permissions_egress().is_empty(),
        "no egress: {:?}",
        group.ip_permissions_egress()
    );
    let expected_tags = obj.ctx().tags();
    assert_eq!(expected_tags.len(), 4);
    assert_eq!(ec2_tags(group.tags()), expected_tags);

    // The endpoint.
    let ep = describe_endpoint(obj.ec2(), &info.vpc_endpoint_id).await;
    assert_eq!(ep.vpc_endpoint_type(), Some(&VpcEndpointType::Interface));
    assert_eq!(ep.service_name(), Some(EXECUTE_API));
    assert_eq!(ep.vpc_id(), Some(net.vpc_id.as_str()));
    assert_eq!(sorted(ep.subnet_ids()), sorted(&net.subnet_ids[..2]));
    assert_eq!(
        endpoint_group_ids(&ep),
        sorted(&[sg.clone(), net.extra_sg_id.clone()])
    );
    assert_eq!(ep.private_dns_enabled(), Some(true));
    assert_eq!(ec2_tags(ep.tags()), expected_tags);
    let regional = info.dns_names.first().expect("DNS names");
    assert!(
        regional.starts_with(&format!("{}-", info.vpc_endpoint_id))
            && regional.ends_with(".execute-api.us-east-1.vpce.amazonaws.com")
            && !regional.contains("-us-east-1a."),
        "regional name first: {:?}",
        info.dns_names
    );
    assert_eq!(
        info.dns_names.len(),
        3,
        "regional + one per AZ: {:?}",
        info.dns_names
    );

    // The ClientToken: the same create with the token derived from the canonical parameters
    // returns this endpoint (a different token would have made a second one).
    let create = obj.spec.endpoint.create.clone().expect("create spec");
    let desired = DesiredEndpoint::new(&create, &sg);
    let params = canonical_create_params(REGION, &create, &desired, &expected_tags);
    let token = obj.owner.endpoint_client_token(&params, None);
    let again = obj
        .ec2()
        .create_vpc_endpoint()
        .vpc_endpoint_type(VpcEndpointType::Interface)
        .vpc_id(&net.vpc_id)
        .service_name(EXECUTE_API)
        .set_subnet_ids(Some(desired.subnet_ids.iter().cloned().collect()))
        .set_security_group_ids(Some(desired.security_group_ids.iter().cloned().collect()))
        .private_dns_enabled(true)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::VpcEndpoint)
                .set_tags(Some(
                    expected_tags
                        .iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .build(),
        )
        .client_token(&token)
        .send()
        .await
        .expect("CreateVpcEndpoint with the operator's token");
    assert_eq!(
        again.vpc_endpoint().and_then(|e| e.vpc_endpoint_id()),
        Some(info.vpc_endpoint_id.as_str()),
        "the operator created the endpoint with ClientToken {token}"
    );
    assert_eq!(live_endpoints_in(obj.ec2(), &net.vpc_id).await.len(), 1);
}

/// `pending` → `available`: not ready (reason Pending) until the endpoint is available, without
/// writes meanwhile; then ready (reason Available).
#[tokio::test]
async fn waits_for_pending_endpoint_to_become_available() {
    let bed = bed().await;
    let net = network(&bed, 102).await;
    let mut obj = Object::new(bed, "pending", create_spec(&net));
    let started = Instant::now();
    let (first, _) = obj.reconciled().await;
    assert_eq!(first.state.reason, "Pending");
    let (ready, pending_reconciles) = obj.until_ready().await;
    println!(
        "available after {:?} and {} more pending reconciles",
        started.elapsed(),
        pending_reconciles
    );
    assert!(
        pending_reconciles >= 1,
        "the endpoint was pending for a while"
    );
    assert_eq!(ready.state.reason, "Available");
    assert!(ready.value.available);
    assert_eq!(ready.value.vpc_endpoint_id, first.value.vpc_endpoint_id);
    assert!(ready.changes.is_empty(), "{:?}", ready.changes);
    assert_eq!(
        state(&describe_endpoint(obj.ec2(), &ready.value.vpc_endpoint_id).await),
        "available"
    );
}

/// A reconcile of an object in sync makes no write, and two reads.
#[tokio::test]
async fn steady_state_makes_no_writes() {
    let bed = bed().await;
    let net = network(&bed, 103).await;
    let mut obj = Object::new(bed, "steady", create_spec(&net));
    obj.reconciled().await;
    let (ready, _) = obj.until_ready().await;
    for _ in 0..3 {
        let (outcome, calls) = obj.reconciled().await;
        println!("steady-state reconcile: {calls:?}");
        assert_eq!(calls.writes, 0, "{calls:?}");
        assert_eq!(calls.count("DescribeVpcEndpoints"), 1, "{calls:?}");
        assert_eq!(calls.count("DescribeSecurityGroups"), 1, "{calls:?}");
        assert_eq!(calls.reads, 2, "{calls:?}");
        assert!(outcome.changes.is_empty(), "{:?}", outcome.changes);
        assert!(outcome.state.ready);
        assert_eq!(outcome.value, ready.value);
    }
}

/// Status lost (a crash before it was written, or a rebuilt status): the endpoint is found by
/// its tags and the group by its name; nothing is created twice.
#[tokio::test]
async fn finds_endpoint_and_group_again_when_status_is_lost() {
    let bed = bed().await;
    let net = network(&bed, 104).await;
    let mut obj = Object::new(bed, "lost", create_spec(&net));
    let (created, _) = obj.reconciled().await;
    obj.status = PrivateApiStatus::default();
    let (found, calls) = obj.reconciled().await;
    assert_eq!(found.value.vpc_endpoint_id, created.value.vpc_endpoint_id);
    assert_eq!(
        found.value.security_group_id,
        created.value.security_group_id
    );
    assert!(found.changes.is_empty(), "{:?}", found.changes);
    assert_eq!(calls.writes, 0, "{calls:?}");
    assert_eq!(calls.reads, 2, "by name and by tags: {calls:?}");
    assert_eq!(live_endpoints_in(obj.ec2(), &net.vpc_id).await.len(), 1);
    assert_eq!(
        groups_named(obj.ec2(), &net.vpc_id, &obj.owner.security_group_name()).await,
        1
    );
}

/// A create whose answer was lost and whose endpoint the tag search cannot see (tags not yet
/// visible): CreateVpcEndpoint again with the same ClientToken returns the same endpoint, and
/// the missing tags are put back.
#[tokio::test]
async fn client_token_returns_the_same_endpoint_after_a_lost_answer() {
    let bed = bed().await;
    let net = network(&bed, 105).await;
    let mut obj = Object::new(bed, "token", create_spec(&net));
    let (created, _) = obj.reconciled().await;
    let id = created.value.vpc_endpoint_id.clone();
    obj.ec2()
        .delete_tags()
        .resources(&id)
        .tags(Tag::builder().key("privateapi.io/owner").build())
        .send()
        .await
        .expect("DeleteTags");
    obj.status = PrivateApiStatus::default();
    let (outcome, calls) = obj.reconciled().await;
    assert_eq!(calls.count("CreateVpcEndpoint"), 1, "{calls:?}");
    assert_eq!(outcome.value.vpc_endpoint_id, id, "same endpoint");
    assert_eq!(
        live_endpoints_in(obj.ec2(), &net.vpc_id).await.len(),
        1,
        "no duplicate"
    );
    assert_eq!(calls.count("CreateTags"), 1, "{calls:?}");
    let ep = describe_endpoint(obj.ec2(), &id).await;
    assert_eq!(ec2_tags(ep.tags()), obj.ctx().tags());
    // And then in sync.
    let (_, calls) = obj.reconciled().await;
    assert_eq!(calls.writes, 0, "{calls:?}");
}

/// Drift on the group, made directly in AWS: an extra ingress rule, a required one revoked, an
/// egress rule. One reconcile reverts exactly that.
#[tokio::test]
async fn security_group_drift_is_reverted() {
    let bed = bed().await;
    let net = network(&bed, 106).await;
    let mut obj = Object::new(bed, "sg-drift", create_spec(&net));
    let (created, _) = obj.reconciled().await;
    let sg = created
        .value
        .security_group_id
        .clone()
        .expect("managed group");
    let allowed = format!("10.{}.0.0/24", net.second_octet);
    let tcp = |from: i32, to: i32, cidrs: &[&str]| {
        let mut p = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(from)
            .to_port(to);
        for c in cidrs {
            p = p.ip_ranges(IpRange::builder().cidr_ip(*c).build());
        }
        p.build()
    };
    let ec2 = obj.ec2().clone();
    ec2.authorize_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(tcp(22, 22, &["0.0.0.0/0"]))
        .ip_permissions(tcp(443, 443, &["192.0.2.0/24"]))
        .send()
        .await
        .expect("add ingress");
    ec2.revoke_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(tcp(443, 443, &[&allowed]))
        .send()
        .await
        .expect("revoke ingress");
    ec2.authorize_security_group_egress()
        .group_id(&sg)
        .ip_permissions(tcp(443, 443, &["0.0.0.0/0"]))
        .send()
        .await
        .expect("add egress");
    let drifted = describe_group(&ec2, &sg).await.expect("group");
    assert_eq!(
        rule_strings(drifted.ip_permissions()),
        BTreeSet::from([
            "tcp 22-22 0.0.0.0/0".to_string(),
            "tcp 443-443 192.0.2.0/24".to_string(),
            format!("tcp 443-443 {}", net.client_sg_id),
        ])
    );

    let (outcome, calls) = obj.reconciled().await;
    assert_eq!(calls.count("RevokeSecurityGroupIngress"), 1, "{calls:?}");
    assert_eq!(calls.count("AuthorizeSecurityGroupIngress"), 1, "{calls:?}");
    assert_eq!(calls.count("RevokeSecurityGroupEgress"), 1, "{calls:?}");
    assert_eq!(calls.writes, 3, "{calls:?}");
    let details: Vec<&str> = outcome.changes.iter().map(|c| c.detail.as_str()).collect();
    assert!(
        details.contains(
            &format!("ingress: +tcp/443 {allowed}, -tcp/22 0.0.0.0/0, -tcp/443 192.0.2.0/24")
                .as_str()
        ),
        "{details:?}"
    );
    let group = describe_group(&ec2, &sg).await.expect("group");
    assert_eq!(
        rule_strings(group.ip_permissions()),
        https_rules(&[&allowed, &net.client_sg_id])
    );
    assert!(group.ip_permissions_egress().is_empty());
    let (_, calls) = obj.reconciled().await;
    assert_eq!(calls.writes, 0, "in sync again: {calls:?}");
}

/// Drift on the endpoint, made directly in AWS: a subnet removed, the managed group detached,
/// private DNS turned off. One reconcile, one ModifyVpcEndpoint.
#[tokio::test]
async fn endpoint_drift_is_reverted() {
    let bed = bed().await;
    let net = network(&bed, 107).await;
    let mut obj = Object::new(bed, "ep-drift", create_spec(&net));
    obj.reconciled().await;
    let (ready, _) = obj.until_ready().await;
    let id = ready.value.vpc_endpoint_id.clone();
    let sg = ready
        .value
        .security_group_id
        .clone()
        .expect("managed group");
    let ec2 = obj.ec2().clone();
    ec2.modify_vpc_endpoint()
        .vpc_endpoint_id(&id)
        .remove_subnet_ids(&net.subnet_ids[1])
        .remove_security_group_ids(&sg)
        .private_dns_enabled(false)
        .send()
        .await
        .expect("drift");
    let drifted = describe_endpoint(&ec2, &id).await;
    assert_eq!(drifted.subnet_ids(), &net.subnet_ids[..1]);
    assert_eq!(endpoint_group_ids(&drifted), vec![net.extra_sg_id.clone()]);
    assert_eq!(drifted.private_dns_enabled(), Some(false));

    let (outcome, calls) = obj.reconciled().await;
    assert_eq!(calls.count("ModifyVpcEndpoint"), 1, "{calls:?}");
    assert_eq!(calls.writes, 1, "{calls:?}");
    assert_eq!(
        outcome
            .changes
            .iter()
            .map(|c| c.detail.as_str())
            .collect::<Vec<_>>(),
        [format!(
            "subnets +{}, security groups +{sg}, private DNS on",
            net.subnet_ids[1]
        )
        .as_str()]
    );
    assert!(outcome.value.private_dns);
    let ep = describe_endpoint(&ec2, &id).await;
    assert_eq!(sorted(ep.subnet_ids()), sorted(&net.subnet_ids[..2]));
    assert_eq!(
        endpoint_group_ids(&ep),
        sorted(&[sg, net.extra_sg_id.clone()])
    );
    assert_eq!(ep.private_dns_enabled(), Some(true));
    let (_, calls) = obj.reconciled().await;
    assert_eq!(calls.writes, 0, "in sync again: {calls:?}");
}

/// Spec changes converge: a subnet and a CIDR added, the extra group and private DNS dropped;
/// then a subnet replaced by another in the same AZ (EC2 wants the removal first: two calls).
#[tokio::test]
async fn spec_changes_converge() {
    let bed = bed().await;
    let net = network(&bed, 108).await;
    let mut obj = Object::new(bed, "change", create_spec(&net));
    obj.reconciled().await;
    let (ready, _) = obj.until_ready().await;
    let id = ready.value.vpc_endpoint_id.clone();
    let sg = ready
        .value
        .security_group_id
        .clone()
        .expect("managed group");
    let first = format!("10.{}.0.0/24", net.second_octet);

    obj.spec = spec()
        .endpoint_create(&net)
        .private_dns(false)
        .allowed_cidrs([first.as_str(), "172.16.0.0/12"])
        .typed_spec();
    let (outcome, calls) = obj.reconciled().await;
    println!("spec change: {calls:?}");
    assert_eq!(calls.count("AuthorizeSecurityGroupIngress"), 1, "{calls:?}");
    assert_eq!(calls.count("ModifyVpcEndpoint"), 1, "{calls:?}");
    assert_eq!(calls.writes, 2, "{calls:?}");
    assert_eq!(
        calls.count("DescribeSubnets"),
        1,
        "the added subnet is checked: {calls:?}"
    );
    assert_eq!(outcome.value.vpc_endpoint_id, id);
    assert!(!outcome.value.private_dns);
    let group = describe_group(obj.ec2(), &sg).await.expect("group");
    assert_eq!(
        rule_strings(group.ip_permissions()),
        https_rules(&[&first, "172.16.0.0/12", &net.client_sg_id])
    );
    let ep = describe_endpoint(obj.ec2(), &id).await;
    assert_eq!(sorted(ep.subnet_ids()), sorted(&net.subnet_ids));
    assert_eq!(endpoint_group_ids(&ep), vec![sg.clone()]);
    assert_eq!(ep.private_dns_enabled(), Some(false));

    // Move the endpoint from subnets[0] to another subnet of us-east-1a.
    let other_a = add_subnet(
        obj.bed.ec2(),
        &net.vpc_id,
        &format!("10.{}.9.0/24", net.second_octet),
        "us-east-1a",
    )
    .await;
    let mut create = obj.spec.endpoint.create.clone().expect("create spec");
    create.subnet_ids = vec![
        other_a.clone(),
        net.subnet_ids[1].clone(),
        net.subnet_ids[2].clone(),
    ];
    obj.spec.endpoint.create = Some(create);
    let (_, calls) = obj.reconciled().await;
    assert_eq!(
        calls.count("ModifyVpcEndpoint"),
        2,
        "remove, then add: {calls:?}"
    );
    let ep = describe_endpoint(obj.ec2(), &id).await;
    assert_eq!(
        sorted(ep.subnet_ids()),
        sorted(&[
            other_a,
            net.subnet_ids[1].clone(),
            net.subnet_ids[2].clone()
        ])
    );
    assert_eq!(ep.network_interface_ids().len(), 3);
    let (_, calls) = obj.reconciled().await;
    assert_eq!(calls.writes, 0, "in sync: {calls:?}");
}

/// The same object re-created (new UID, same cluster and name): its resources are adopted, not
/// duplicated; the UID tag moves.
#[tokio::test]
async fn recreated_object_adopts_its_resources() {
    let bed = bed().await;
    let net = network(&bed, 109).await;
    let mut obj = Object::new(bed, "adopt", create_spec(&net));
    let (created, _) = obj.reconciled().await;
    obj.owner.uid = unique("new-uid");
    obj.status = PrivateApiStatus::default();
    let (outcome, calls) = obj.reconciled().await;
    assert_eq!(outcome.value.vpc_endpoint_id, created.value.vpc_endpoint_id);
    assert_eq!(
        outcome.value.security_group_id,
        created.value.security_group_id
    );
    assert_eq!(calls.count("CreateTags"), 1, "{calls:?}");
    assert_eq!(calls.writes, 1, "{calls:?}");
    let adopted: Vec<&str> = outcome
        .changes
        .iter()
        .filter(|c| c.action == "Adopted")
        .map(|c| c.resource.as_str())
        .collect();
    assert_eq!(adopted.len(), 2, "{:?}", outcome.changes);
    let ep = describe_endpoint(obj.ec2(), &outcome.value.vpc_endpoint_id).await;
    assert_eq!(
        ec2_tags(ep.tags()).get("privateapi.io/uid"),
        Some(&obj.owner.uid)
    );
    assert_eq!(live_endpoints_in(obj.ec2(), &net.vpc_id).await.len(), 1);
}

/// Two endpoints owned by one object (a past duplicate): the older is kept, the other deleted.
#[tokio::test]
async fn duplicate_owned_endpoint_is_deleted() {
    let bed = bed().await;
    let net = network(&bed, 110).await;
    let mut obj = Object::new(bed, "dup", create_spec(&net));
    let (created, _) = obj.reconciled().await;
    let kept = created.value.vpc_endpoint_id.clone();
    // Creation times are compared; make sure they differ.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tags = obj.ctx().tags();
    let duplicate = obj
        .ec2()
        .create_vpc_endpoint()
        .vpc_endpoint_type(VpcEndpointType::Interface)
        .vpc_id(&net.vpc_id)
        .service_name(EXECUTE_API)
        .subnet_ids(&net.subnet_ids[0])
        .security_group_ids(&net.extra_sg_id)
        .private_dns_enabled(false)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::VpcEndpoint)
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .build(),
        )
        .send()
        .await
        .expect("CreateVpcEndpoint")
        .vpc_endpoint
        .and_then(|e| e.vpc_endpoint_id)
        .expect("endpoint ID");
    obj.status = PrivateApiStatus::default();
    let (outcome, calls) = obj.reconciled().await;
    assert_eq!(outcome.value.vpc_endpoint_id, kept, "the older one is kept");
    assert_eq!(calls.count("DeleteVpcEndpoints"), 1, "{calls:?}");
    assert!(
        outcome
            .changes
            .iter()
            .any(|c| c.action == "Deleted" && c.resource == format!("VPC endpoint {duplicate}")),
        "{:?}",
        outcome.changes
    );
    assert!(matches!(
        state(&describe_endpoint(obj.ec2(), &duplicate).await).as_str(),
        "deleting" | "deleted"
    ));
    let live: Vec<String> = live_endpoints_in(obj.ec2(), &net.vpc_id)
        .await
        .iter()
        .filter_map(|e| e.vpc_endpoint_id().map(str::to_string))
        .collect();
    assert_eq!(live, vec![kept]);
}

/// What only AWS can judge: references that don't exist (ReferenceNotFound) or don't fit
/// (InvalidSpec), naming the field, nothing written, nothing left behind.
#[tokio::test]
async fn invalid_references_are_invalid_spec_and_leave_nothing() {
    let bed = bed().await;
    let net = network(&bed, 111).await;
    let other = network(&bed, 112).await;
    let same_az = add_subnet(bed.ec2(), &net.vpc_id, "10.111.9.0/24", "us-east-1a").await;
    let unknown_subnet = "subnet-0123456789abcdef0";
    let unknown_sg = "sg-0123456789abcdef0";
    let base = create_base(&net);
    let cases = [
        (
            base.clone()
                .subnets([net.subnet_ids[0].as_str(), unknown_subnet])
                .typed_spec(),
            "spec.endpoint.create.subnetIds[1]",
            unknown_subnet.to_string(),
        ),
        (
            base.clone().subnets([&other.subnet_ids[0]]).typed_spec(),
            "spec.endpoint.create.subnetIds[0]",
            other.subnet_ids[0].clone(),
        ),
        (
            base.clone()
                .subnets([&net.subnet_ids[0], &net.subnet_ids[1], &same_az])
                .typed_spec(),
            "spec.endpoint.create.subnetIds[2]",
            "us-east-1a".to_string(),
        ),
        (
            base.clone().vpc_id("vpc-0123456789abcdef0").typed_spec(),
            "spec.endpoint.create.vpcId",
            "vpc-0123456789abcdef0".to_string(),
        ),
        (
            base.clone()
                .allowed_security_groups([net.client_sg_id.as_str(), unknown_sg])
                .typed_spec(),
            "spec.endpoint.create.allowedSecurityGroupIds[1]",
            unknown_sg.to_string(),
        ),
        (
            base.clone().security_groups([unknown_sg]).typed_spec(),
            "spec.endpoint.create.securityGroupIds[0]",
            unknown_sg.to_string(),
        ),
        (
            base.clone()
                .security_groups([&other.extra_sg_id])
                .typed_spec(),
            "spec.endpoint.create.securityGroupIds[0]",
            other.extra_sg_id.clone(),
        ),
    ];
    let mut obj = Object::new(bed, "invalid", base.typed_spec());
    for (spec, expected_field, mentioned) in cases {
        obj.spec = spec;
        let (result, calls) = obj.reconcile().await;
        let (field, message) = refused(result);
        assert_eq!(field, expected_field, "{message}");
        assert!(message.contains(&mentioned), "{field}: {message}");
        assert_eq!(calls.writes, 0, "nothing created for {field}: {calls:?}");
        let err_text = format!("{field}: {message}");
        println!("{err_text}");
    }
    assert!(live_endpoints_in(obj.ec2(), &net.vpc_id).await.is_empty());
    assert_eq!(
        groups_named(obj.ec2(), &net.vpc_id, &obj.owner.security_group_name()).await,
        0
    );
    let (cleanup, calls) = obj.cleanup().await;
    assert!(cleanup.done);
    assert!(cleanup.changes.is_empty(), "{:?}", cleanup.changes);
    assert_eq!(calls.writes, 0, "{calls:?}");
}

/// Private DNS while another execute-api endpoint in the VPC has it: InvalidSpec naming
/// privateDns. The group made before the endpoint was refused is removed by cleanup_owned.
#[tokio::test]
async fn private_dns_conflict_is_invalid_spec() {
    let bed = bed().await;
    let net = network(&bed, 113).await;
    let foreign = foreign_endpoint(&bed, &net, EXECUTE_API, true).await;
    let mut obj = Object::new(bed, "dns", create_spec(&net));
    let (result, _) = obj.reconcile().await;
    let (field, message) = invalid_spec(result);
    assert_eq!(field, "spec.endpoint.create.privateDns", "{message}");
    assert!(message.contains("conflicting DNS domain"), "{message}");
    let live: Vec<String> = live_endpoints_in(obj.ec2(), &net.vpc_id)
        .await
        .iter()
        .filter_map(|e| e.vpc_endpoint_id().map(str::to_string))
        .collect();
    assert_eq!(live, vec![foreign.clone()], "no endpoint of ours");
    assert_eq!(
        groups_named(obj.ec2(), &net.vpc_id, &obj.owner.security_group_name()).await,
        1,
        "the group was made before EC2 refused the endpoint"
    );
    let (cleanup, _) = obj.cleanup().await;
    assert!(cleanup.done);
    assert_eq!(cleanup.changes.len(), 1, "{:?}", cleanup.changes);
    assert_eq!(
        groups_named(obj.ec2(), &net.vpc_id, &obj.owner.security_group_name()).await,
        0
    );
    let foreign_state = state(&describe_endpoint(obj.ec2(), &foreign).await);
    assert!(
        matches!(foreign_state.as_str(), "pending" | "available"),
        "the other endpoint is untouched: {foreign_state}"
    );
}

// ---------------------------------------------------------------------------------------------
// endpoint.id
// ---------------------------------------------------------------------------------------------

/// An existing execute-api endpoint: pending, then ready; never written to, one read each.
#[tokio::test]
async fn referenced_endpoint_is_used_and_never_modified() {
    let bed = bed().await;
    let net = network(&bed, 114).await;
    let foreign = foreign_endpoint(&bed, &net, EXECUTE_API, false).await;
    let before = describe_endpoint(bed.ec2(), &foreign).await;
    let mut obj = Object::new(bed, "ref", id_spec(&foreign));

    let (pending, calls) = obj.reconciled().await;
    assert!(!pending.state.ready);
    assert_eq!(pending.state.reason, "Pending");
    assert!(
        pending.state.message.contains(&foreign),
        "{}",
        pending.state.message
    );
    assert_eq!((calls.reads, calls.writes), (1, 0), "{calls:?}");

    wait_available(obj.ec2(), &foreign).await;
    let (ready, calls) = obj.reconciled().await;
    assert!(ready.state.ready);
    assert_eq!(ready.state.reason, "Available");
    assert_eq!((calls.reads, calls.writes), (1, 0), "{calls:?}");
    assert!(ready.changes.is_empty());
    assert_eq!(
        ready.value,
        EndpointInfo {
            vpc_endpoint_id: foreign.clone(),
            security_group_id: None,
            private_dns: false,
            dns_names: ready.value.dns_names.clone(),
            available: true,
            owned: false,
        }
    );
    assert!(ready.value.dns_names[0].starts_with(&format!("{foreign}-")));

    // cleanup_owned never touches it, even with its ID in status.
    let (cleanup, calls) = obj.cleanup().await;
    assert!(cleanup.done);
    assert!(cleanup.changes.is_empty());
    assert_eq!(calls.writes, 0, "{calls:?}");
    let after = describe_endpoint(obj.ec2(), &foreign).await;
    assert_eq!(state(&after), "available");
    assert_eq!(after.subnet_ids(), before.subnet_ids());
    assert_eq!(endpoint_group_ids(&after), endpoint_group_ids(&before));
    assert!(after.tags().is_empty(), "no tags added: {:?}", after.tags());
}

/// `endpoint.id` of something that cannot serve: another service, an unknown ID, a deleted one.
#[tokio::test]
async fn referenced_endpoint_must_be_a_live_execute_api_endpoint() {
    let bed = bed().await;
    let net = network(&bed, 115).await;
    let sqs = foreign_endpoint(&bed, &net, "com.amazonaws.us-east-1.sqs", false).await;
    let deleted = foreign_endpoint(&bed, &net, EXECUTE_API, false).await;
    bed.ec2()
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(&deleted)
        .send()
        .await
        .expect("DeleteVpcEndpoints");
    let mut obj = Object::new(bed, "ref-bad", id_spec(&sqs));
    for (id, mentioned) in [
        (sqs.as_str(), "com.amazonaws.us-east-1.sqs"),
        ("vpce-0123456789abcdef0", "does not exist"),
        (deleted.as_str(), "delet"),
    ] {
        obj.spec = id_spec(id);
        let (result, calls) = obj.reconcile().await;
        let (field, message) = refused(result);
        assert_eq!(field, "spec.endpoint.id");
        assert!(
            message.contains(id) && message.contains(mentioned),
            "{message}"
        );
        assert_eq!(calls.writes, 0);
    }
}

// ---------------------------------------------------------------------------------------------
// cleanup
// ---------------------------------------------------------------------------------------------

/// cleanup_owned deletes the endpoint, then the group once the endpoint's network interfaces
/// are gone (done=false meanwhile), and is done for good afterwards.
#[tokio::test]
async fn cleanup_removes_endpoint_then_group() {
    let bed = bed().await;
    let net = network(&bed, 116).await;
    let mut obj = Object::new(bed, "cleanup", create_spec(&net));
    let (created, _) = obj.reconciled().await;
    let id = created.value.vpc_endpoint_id.clone();
    let sg = created
        .value
        .security_group_id
        .clone()
        .expect("managed group");

    let (first, calls) = obj.cleanup().await;
    assert!(
        !first.done,
        "the group is still in use right after the endpoint's deletion"
    );
    assert_eq!(calls.count("DeleteVpcEndpoints"), 1, "{calls:?}");
    assert_eq!(calls.count("DeleteSecurityGroup"), 1, "{calls:?}");
    assert_eq!(
        first
            .changes
            .iter()
            .map(|c| (c.action, c.resource.as_str()))
            .collect::<Vec<_>>(),
        [("Deleted", format!("VPC endpoint {id}").as_str())]
    );
    let not_done = obj.cleanup_until_done().await;
    println!("cleanup done after {} more not-done calls", not_done);
    assert!(
        describe_group(obj.ec2(), &sg).await.is_none(),
        "group deleted"
    );
    assert!(live_endpoints_in(obj.ec2(), &net.vpc_id).await.is_empty());
    let (last, calls) = obj.cleanup().await;
    assert!(last.done);
    assert!(last.changes.is_empty());
    assert_eq!(calls.writes, 0, "{calls:?}");
}

/// The spec switched from `create` to `id`: reconcile uses the referenced endpoint without
/// touching anything; cleanup_owned then removes the owned endpoint and group, found by their
/// tags (status no longer names them), and leaves the referenced one alone.
#[tokio::test]
async fn switch_from_create_to_id_then_cleanup_owned() {
    let bed = bed().await;
    let net = network(&bed, 117).await;
    let foreign = foreign_endpoint(&bed, &net, EXECUTE_API, false).await;
    let mut obj = Object::new(bed, "switch", create_spec(&net));
    let (created, _) = obj.reconciled().await;
    let owned = created.value.vpc_endpoint_id.clone();
    let sg = created
        .value
        .security_group_id
        .clone()
        .expect("managed group");
    wait_available(obj.ec2(), &foreign).await;

    obj.spec = id_spec(&foreign);
    let (outcome, calls) = obj.reconciled().await;
    assert_eq!(outcome.value.vpc_endpoint_id, foreign);
    assert!(outcome.state.ready);
    assert_eq!(calls.writes, 0, "{calls:?}");
    assert_eq!(obj.status.security_group_id, None);
    assert_ne!(
        state(&describe_endpoint(obj.ec2(), &owned).await),
        "deleting",
        "reconcile leaves the owned endpoint to cleanup_owned"
    );

    let (first, _) = obj.cleanup().await;
    assert!(!first.done);
    let not_done = obj.cleanup_until_done().await;
    println!("switch cleanup done after {} more not-done calls", not_done);
    assert!(matches!(
        state(&describe_endpoint(obj.ec2(), &owned).await).as_str(),
        "deleting" | "deleted"
    ));
    assert!(describe_group(obj.ec2(), &sg).await.is_none());
    assert_eq!(
        state(&describe_endpoint(obj.ec2(), &foreign).await),
        "available"
    );
}
