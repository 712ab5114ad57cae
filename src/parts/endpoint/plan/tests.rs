use super::*;
use crate::crd::RetiringResource;
use crate::parts::endpoint::fixtures::{live_endpoint, spec};
use crate::parts::endpoint::observe::ObservedEndpoints;
use crate::parts::missing_tags;

fn group() -> LiveGroup {
    LiveGroup {
        id: "sg-managed".into(),
        vpc_id: "vpc-1".into(),
        ..Default::default()
    }
}

fn observed(group: Option<LiveGroup>, endpoints: ObservedEndpoints) -> ObservedOwned {
    ObservedOwned { group, endpoints }
}

fn failed(id: &str, last_error: Option<&str>) -> LiveEndpoint {
    let mut endpoint = live_endpoint(id);
    endpoint.state = "failed".into();
    endpoint.last_error = last_error.map(str::to_string);
    endpoint
}

/// The endpoint kept, and whether it is adopted.
fn kept(plan: &OwnedPlan) -> Option<(&str, bool)> {
    match &plan.endpoint {
        EndpointStep::Keep { live, adopt } => Some((live.id.as_str(), *adopt)),
        _ => None,
    }
}

fn deleted(plan: &OwnedPlan) -> Vec<(&str, &str)> {
    plan.delete
        .iter()
        .map(|d| (d.id.as_str(), d.why.as_str()))
        .collect()
}

#[test]
fn in_sync_keeps_both_and_checks_nothing() {
    let plan = plan_owned(
        observed(
            Some(group()),
            ObservedEndpoints {
                keep: Some(live_endpoint("vpce-1")),
                ..Default::default()
            },
        ),
        &spec(),
        &PrivateApiStatus::default(),
    );
    assert!(!plan.check_references);
    assert_eq!(plan.group, Some(group()));
    assert!(plan.delete.is_empty());
    assert_eq!(kept(&plan), Some(("vpce-1", false)));
}

#[test]
fn anything_to_create_checks_every_reference_first() {
    let nothing = plan_owned(
        observed(None, ObservedEndpoints::default()),
        &spec(),
        &PrivateApiStatus::default(),
    );
    assert!(nothing.check_references);
    assert!(nothing.group.is_none());
    assert!(matches!(nothing.endpoint, EndpointStep::Create));

    let no_group = plan_owned(
        observed(
            None,
            ObservedEndpoints {
                keep: Some(live_endpoint("vpce-1")),
                ..Default::default()
            },
        ),
        &spec(),
        &PrivateApiStatus::default(),
    );
    assert!(no_group.check_references);
    assert_eq!(kept(&no_group), Some(("vpce-1", false)));
}

#[test]
fn duplicates_and_failed_endpoints_go_but_not_the_one_still_served() {
    let status = PrivateApiStatus {
        vpc_endpoint_id: Some("vpce-served".into()),
        retiring: vec![RetiringResource {
            kind: RetiringResource::VPC_ENDPOINT.into(),
            id: "vpce-retiring".into(),
        }],
        ..Default::default()
    };
    let plan = plan_owned(
        observed(
            Some(group()),
            ObservedEndpoints {
                keep: Some(live_endpoint("vpce-adopted")),
                duplicates: ["vpce-dup", "vpce-retiring", "vpce-served"]
                    .map(live_endpoint)
                    .to_vec(),
                failed: vec![
                    failed("vpce-f1", Some("Quota: too many")),
                    failed("vpce-f2", None),
                ],
                adopting: true,
                ..Default::default()
            },
        ),
        &spec(),
        &status,
    );
    assert_eq!(
        deleted(&plan),
        [
            ("vpce-dup", "a duplicate owned by this object"),
            ("vpce-f1", "it is failed: Quota: too many"),
            ("vpce-f2", "it is failed"),
        ]
    );
    assert_eq!(kept(&plan), Some(("vpce-adopted", true)));
}

#[test]
fn a_failed_endpoint_is_not_made_again_until_the_spec_changes() {
    let plan = plan_owned(
        observed(
            Some(group()),
            ObservedEndpoints {
                failed: vec![failed("vpce-f", Some("Quota: too many"))],
                ..Default::default()
            },
        ),
        &spec(),
        &PrivateApiStatus::default(),
    );
    assert_eq!(
        deleted(&plan),
        [("vpce-f", "it is failed: Quota: too many")]
    );
    match plan.endpoint {
        EndpointStep::Refuse(Error::InvalidSpec { field, message }) => {
            assert_eq!(field, "spec.endpoint.create");
            assert!(
                message.starts_with("VPC endpoint vpce-f failed (Quota: too many);"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_deleting_endpoint_blocks_a_new_one_only_with_private_dns() {
    let deleting = || ObservedEndpoints {
        deleting: vec!["vpce-going".into()],
        ..Default::default()
    };
    let plan = plan_owned(
        observed(Some(group()), deleting()),
        &spec(),
        &PrivateApiStatus::default(),
    );
    assert!(plan.check_references);
    match plan.endpoint {
        EndpointStep::Refuse(Error::CleanupInProgress(message)) => {
            assert!(message.starts_with("VPC endpoint vpce-going is still deleting"))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut no_dns = spec();
    no_dns.private_dns = false;
    let plan = plan_owned(
        observed(Some(group()), deleting()),
        &no_dns,
        &PrivateApiStatus::default(),
    );
    assert!(matches!(plan.endpoint, EndpointStep::Create));
}

#[test]
fn a_pending_endpoint_is_modified_once_available() {
    let desired = DesiredEndpoint::new(&spec(), "sg-managed");
    let mut live = live_endpoint("vpce-1");
    assert_eq!(plan_update(&live, &desired), EndpointUpdate::InSync);
    live.private_dns = false;
    let diff = EndpointDiff {
        private_dns: Some(true),
        ..Default::default()
    };
    assert_eq!(
        plan_update(&live, &desired),
        EndpointUpdate::Modify(diff.clone())
    );
    live.state = "pending".into();
    assert_eq!(
        plan_update(&live, &desired),
        EndpointUpdate::WaitUntilAvailable(diff)
    );
}

#[test]
fn missing_tags_are_the_absent_and_the_different() {
    let desired = BTreeMap::from([
        ("privateapi.io/uid".to_string(), "new".to_string()),
        ("team".to_string(), "a".to_string()),
    ]);
    let live = BTreeMap::from([
        ("privateapi.io/uid".to_string(), "old".to_string()),
        ("extra".to_string(), "kept".to_string()),
    ]);
    assert_eq!(missing_tags(&desired, &live), desired);
    assert!(missing_tags(&desired, &desired).is_empty());
}

#[test]
fn retagging_adopts_what_an_earlier_object_of_this_name_made() {
    let owner = Owner {
        cluster: "c".into(),
        namespace: "team-a".into(),
        name: "orders".into(),
        uid: "uid-new".into(),
    };
    let tags = owner.tags(&BTreeMap::from([("team".to_string(), "a".to_string())]));
    let mut group = group();
    group.tags = Owner {
        uid: "uid-old".into(),
        ..owner.clone()
    }
    .tags(&BTreeMap::new());
    let mut endpoint = live_endpoint("vpce-1");
    endpoint.tags = owner.tags(&BTreeMap::new());
    let retag = plan_retag(&owner, &tags, &group, &endpoint);
    assert_eq!(retag.ids, ["sg-managed", "vpce-1"]);
    let summary: Vec<(&str, &str, &str)> = retag
        .changes
        .iter()
        .map(|c| (c.action, c.resource.as_str(), c.detail.as_str()))
        .collect();
    assert_eq!(summary[0].0, "Adopted");
    assert_eq!(summary[0].1, "security group sg-managed");
    assert!(summary[0].2.contains("uid-old"), "{}", summary[0].2);
    assert_eq!(summary[1], ("Updated", "VPC endpoint vpce-1", "tags team"));

    endpoint.tags = tags.clone();
    group.tags = tags.clone();
    let in_sync = plan_retag(&owner, &tags, &group, &endpoint);
    assert!(in_sync.ids.is_empty() && in_sync.changes.is_empty());
}
