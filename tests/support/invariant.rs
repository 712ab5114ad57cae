//! The fault suite's invariant: what the operator made in AWS is exactly what the live
//! `PrivateApi` objects own. Every resource in the AWS fake carrying the operator's tags (or its
//! names) is compared with the objects' status IDs and UIDs:
//!
//! - no duplicate: at most one endpoint, security group, REST API and function per object, one
//!   deployment per fingerprint per API, one invoke permission per object;
//! - no orphan: nothing tagged with a UID no live object has, nothing of a live object that its
//!   status does not name, no permission for a REST API that is not the object's;
//! - nothing missing: every ID in a live object's status exists;
//! - every live object Ready for its current generation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use privateapi_operator::aws::RegionClients;
use serde_json::Value;

use super::{condition, kubectl};

const TAG_CLUSTER: &str = "privateapi.io/cluster";
const TAG_UID: &str = "privateapi.io/uid";

/// What the check looks at: the operator's cluster name (its tag) and the namespaces it owns
/// objects in (resource names start with `papi-<namespace>-`).
#[derive(Debug, Clone)]
pub struct Scope {
    pub cluster: String,
    pub namespaces: Vec<String>,
}

impl Scope {
    pub fn new(cluster: &str, namespaces: &[&str]) -> Self {
        Self {
            cluster: cluster.to_string(),
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn is_ours_by_name(&self, name: &str) -> bool {
        self.namespaces
            .iter()
            .any(|ns| name.starts_with(&format!("papi-{ns}-")))
    }
}

/// One AWS resource found: kind, ID, the UID tag (if any).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub kind: &'static str,
    pub id: String,
    pub uid: Option<String>,
}

/// A live object as the invariant sees it.
#[derive(Debug, Clone)]
pub struct LiveObject {
    pub key: String,
    pub uid: String,
    pub ready: bool,
    pub status: Value,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub resources: usize,
    pub live_objects: usize,
    pub duplicates: Vec<String>,
    pub orphans: Vec<String>,
    pub missing: Vec<String>,
    pub not_ready: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.duplicates.is_empty()
            && self.orphans.is_empty()
            && self.missing.is_empty()
            && self.not_ready.is_empty()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} resources, {} live objects; duplicates {:?}; orphans {:?}; missing {:?}; not ready {:?}",
            self.resources,
            self.live_objects,
            self.duplicates,
            self.orphans,
            self.missing,
            self.not_ready
        )
    }
}

/// Live `PrivateApi` objects in the scope's namespaces (also those being deleted).
pub fn live_objects(scope: &Scope) -> Vec<LiveObject> {
    let mut objects = Vec::new();
    for namespace in &scope.namespaces {
        let out = kubectl(&["get", "privateapis", "-n", namespace, "-o", "json"]);
        let list: Value = serde_json::from_str(&out).expect("kubectl get -o json");
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let generation = item["metadata"]["generation"].as_i64();
            let ready = item["metadata"]["deletionTimestamp"].is_null()
                && item["status"]["observedGeneration"].as_i64() == generation
                && condition(&item, "Ready").is_some_and(|c| {
                    c["status"] == "True" && c["observedGeneration"].as_i64() == generation
                });
            objects.push(LiveObject {
                key: format!(
                    "{}/{}",
                    namespace,
                    item["metadata"]["name"].as_str().unwrap_or_default()
                ),
                uid: item["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                ready,
                status: item["status"].clone(),
            });
        }
    }
    objects
}

fn uid_of<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>) -> Option<String> {
    tags.find(|(k, _)| *k == TAG_UID)
        .map(|(_, v)| v.to_string())
}

fn cluster_of<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>) -> Option<String> {
    tags.find(|(k, _)| *k == TAG_CLUSTER)
        .map(|(_, v)| v.to_string())
}

/// Every resource of the scope in the AWS fake: tagged with its cluster, or named as the operator
/// names things in its namespaces. Deleted and deleting endpoints are left out.
pub async fn find_resources(aws: &RegionClients, scope: &Scope) -> Vec<Found> {
    let mut found = BTreeSet::new();
    let endpoints = aws
        .ec2
        .describe_vpc_endpoints()
        .send()
        .await
        .expect("DescribeVpcEndpoints");
    for endpoint in endpoints.vpc_endpoints.unwrap_or_default() {
        let state = super::inspect::endpoint_state(&endpoint);
        let tags = endpoint.tags();
        let pairs = || {
            tags.iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        };
        if cluster_of(pairs()).as_deref() == Some(scope.cluster.as_str())
            && state != "deleted"
            && state != "deleting"
        {
            found.insert(Found {
                kind: "vpc-endpoint",
                id: endpoint.vpc_endpoint_id.clone().unwrap_or_default(),
                uid: uid_of(pairs()),
            });
        }
    }
    let groups = aws
        .ec2
        .describe_security_groups()
        .send()
        .await
        .expect("DescribeSecurityGroups");
    for group in groups.security_groups.unwrap_or_default() {
        let tags = group.tags();
        let pairs = || {
            tags.iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        };
        if cluster_of(pairs()).as_deref() == Some(scope.cluster.as_str())
            || scope.is_ours_by_name(group.group_name().unwrap_or_default())
        {
            found.insert(Found {
                kind: "security-group",
                id: group.group_id.clone().unwrap_or_default(),
                uid: uid_of(pairs()),
            });
        }
    }
    for api in super::inspect::rest_apis(aws).await {
        let tags = api.tags.clone().unwrap_or_default();
        let pairs = || tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if cluster_of(pairs()).as_deref() == Some(scope.cluster.as_str())
            || scope.is_ours_by_name(api.name().unwrap_or_default())
        {
            found.insert(Found {
                kind: "rest-api",
                id: api.id.clone().unwrap_or_default(),
                uid: uid_of(pairs()),
            });
        }
    }
    for (function, tags) in super::inspect::functions_with_tags(aws).await {
        let Some(arn) = function.function_arn.clone() else {
            continue;
        };
        let by_name = scope.is_ours_by_name(function.function_name().unwrap_or_default());
        let pairs = || tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if by_name || cluster_of(pairs()).as_deref() == Some(scope.cluster.as_str()) {
            found.insert(Found {
                kind: "function",
                id: arn,
                uid: uid_of(pairs()),
            });
        }
    }
    // Private custom domain names (`spec.domain`), by the cluster tag; `name+id` as their ID.
    for domain in super::inspect::private_domain_names(aws).await {
        let tags = domain.tags.clone().unwrap_or_default();
        let pairs = || tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if cluster_of(pairs()).as_deref() == Some(scope.cluster.as_str()) {
            found.insert(Found {
                kind: "domain-name",
                id: domain.domain_name_id.clone().unwrap_or_default(),
                uid: uid_of(pairs()),
            });
        }
    }
    found.into_iter().collect()
}

/// Check the invariant once.
pub async fn check(aws: &RegionClients, scope: &Scope) -> Report {
    let objects = live_objects(scope);
    let resources = find_resources(aws, scope).await;
    let mut report = Report {
        resources: resources.len(),
        live_objects: objects.len(),
        ..Report::default()
    };
    let by_uid: BTreeMap<&str, &LiveObject> = objects.iter().map(|o| (o.uid.as_str(), o)).collect();
    let status_field = |kind: &str| match kind {
        "vpc-endpoint" => "vpcEndpointId",
        "security-group" => "securityGroupId",
        "rest-api" => "restApiId",
        _ => "functionArn",
    };
    let mut per_owner: BTreeMap<(String, &'static str), Vec<String>> = BTreeMap::new();
    for resource in &resources {
        match resource.uid.as_deref().and_then(|uid| by_uid.get(uid)) {
            None => report.orphans.push(format!(
                "{} {} (uid {:?}: no live object)",
                resource.kind, resource.id, resource.uid
            )),
            Some(object) => {
                per_owner
                    .entry((object.key.clone(), resource.kind))
                    .or_default()
                    .push(resource.id.clone());
                let named = match resource.kind {
                    "domain-name" => object.status["domain"]["domainNameId"].as_str(),
                    kind => object.status[status_field(kind)].as_str(),
                };
                if named != Some(resource.id.as_str()) {
                    report.orphans.push(format!(
                        "{} {} of {} (its status names {:?})",
                        resource.kind, resource.id, object.key, named
                    ));
                }
            }
        }
    }
    for ((key, kind), ids) in &per_owner {
        if ids.len() > 1 {
            report
                .duplicates
                .push(format!("{} {kind}s of {key}: {ids:?}", ids.len()));
        }
    }
    let ids: BTreeSet<&str> = resources.iter().map(|r| r.id.as_str()).collect();
    for object in &objects {
        if !object.ready {
            report.not_ready.push(object.key.clone());
        }
        for field in ["securityGroupId", "restApiId", "functionArn"] {
            if let Some(id) = object.status[field].as_str()
                && !ids.contains(id)
            {
                report
                    .missing
                    .push(format!("{} status.{field} {id}", object.key));
            }
        }
        if let Some(id) = object.status["vpcEndpointId"].as_str()
            && !ids.contains(id)
            && !endpoint_exists(aws, id).await
        {
            report
                .missing
                .push(format!("{} status.vpcEndpointId {id}", object.key));
        }
        if let Some(rest_api_id) = object.status["restApiId"].as_str() {
            check_deployments(aws, object, rest_api_id, &mut report).await;
        }
        if let Some(function) = object.status["functionArn"].as_str() {
            check_permissions(aws, object, function, &mut report).await;
        }
        if let Some(id) = object.status["domain"]["domainNameId"].as_str()
            && !ids.contains(id)
        {
            report
                .missing
                .push(format!("{} status.domain.domainNameId {id}", object.key));
        }
    }
    report
}

async fn endpoint_exists(aws: &RegionClients, id: &str) -> bool {
    aws.ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(id)
        .send()
        .await
        .ok()
        .and_then(|out| out.vpc_endpoints)
        .unwrap_or_default()
        .iter()
        .any(|e| {
            e.state
                .as_ref()
                .is_some_and(|s| !matches!(s.as_str().to_ascii_lowercase().as_str(), "deleted"))
        })
}

/// One deployment per fingerprint; the status's deployment exists.
async fn check_deployments(
    aws: &RegionClients,
    object: &LiveObject,
    rest_api_id: &str,
    report: &mut Report,
) {
    let Ok(deployments) = aws
        .apigateway
        .get_deployments()
        .rest_api_id(rest_api_id)
        .limit(500)
        .send()
        .await
    else {
        return; // the API itself is reported missing
    };
    let items = deployments.items.unwrap_or_default();
    let mut by_fingerprint: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for deployment in &items {
        by_fingerprint
            .entry(deployment.description.clone().unwrap_or_default())
            .or_default()
            .push(deployment.id.clone().unwrap_or_default());
    }
    for (fingerprint, ids) in by_fingerprint {
        if ids.len() > 1 {
            report.duplicates.push(format!(
                "{} deployments of {} with description {fingerprint:?}: {ids:?}",
                ids.len(),
                object.key
            ));
        }
    }
    if let Some(id) = object.status["deploymentId"].as_str()
        && !items.iter().any(|d| d.id.as_deref() == Some(id))
    {
        report
            .missing
            .push(format!("{} status.deploymentId {id}", object.key));
    }
}

/// The function's policy holds one statement of this object, for its REST API.
async fn check_permissions(
    aws: &RegionClients,
    object: &LiveObject,
    function: &str,
    report: &mut Report,
) {
    let Ok(policy) = aws.lambda.get_policy().function_name(function).send().await else {
        return;
    };
    let Some(document) = policy
        .policy
        .and_then(|p| serde_json::from_str::<Value>(&p).ok())
    else {
        return;
    };
    let statements = match &document["Statement"] {
        Value::Array(list) => list.clone(),
        statement @ Value::Object(_) => vec![statement.clone()],
        _ => Vec::new(),
    };
    let ours: Vec<String> = statements
        .iter()
        .filter_map(|s| s["Sid"].as_str())
        .filter(|sid| sid.starts_with("privateapi-"))
        .map(str::to_string)
        .collect();
    if ours.len() > 1 {
        report.duplicates.push(format!(
            "{} invoke permissions on {}: {ours:?}",
            ours.len(),
            object.key
        ));
    }
    if let Some(rest_api_id) = object.status["restApiId"].as_str() {
        for sid in &ours {
            if !sid.ends_with(&format!("-{rest_api_id}")) {
                report.orphans.push(format!(
                    "permission {sid} on {} (its REST API is {rest_api_id})",
                    object.key
                ));
            }
        }
    }
}

/// Poll [`check`] until it holds (deletions finishing, endpoints leaving `deleting`), at most
/// `timeout`; the last report either way.
pub async fn wait_clean(aws: &RegionClients, scope: &Scope, timeout: Duration) -> Report {
    let mut last = None;
    let clean = super::poll::within_async(timeout, Duration::from_secs(2), async || {
        let report = check(aws, scope).await;
        if report.is_clean() {
            Ok(report)
        } else {
            let summary = report.summary();
            last = Some(report);
            Err(summary)
        }
    })
    .await;
    clean.unwrap_or_else(|_| last.expect("at least one look"))
}
