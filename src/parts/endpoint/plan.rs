//! What a reconcile of `endpoint.create` does, decided from what was observed before anything is
//! written (pure, unit-tested without AWS).
//!
//! [`plan_owned`] decides everything it can from the observation. What depends on the managed
//! group as it is once in hand — the rule diff, the endpoint's groups — is planned by
//! `security_group::plan_rules` and [`plan_update`] during the apply: a group about to be created
//! has an ID only then, and one found by name after a lost create answer brings its own rules.

use crate::parts::missing_tags;
use std::collections::BTreeMap;

use super::endpoint_diff::{DesiredEndpoint, EndpointDiff, diff_endpoint};
use super::model::{Lifecycle, LiveEndpoint, owns};
use super::observe::ObservedOwned;
use super::security_group::LiveGroup;
use super::validate::{FIELD_CREATE, invalid};
use crate::crd::{CreateEndpointSpec, PrivateApiStatus, RetiringResource};
use crate::error::Error;
use crate::identity::{Owner, TAG_UID};
use crate::parts::{AdoptedFrom, Change};

#[cfg(test)]
mod tests;

/// The steps of a reconcile of `endpoint.create`, applied in this order.
#[derive(Debug)]
pub(super) struct OwnedPlan {
    /// Something is to be created: every reference of the spec is checked first, so an invalid
    /// spec leaves nothing behind.
    pub(super) check_references: bool,
    /// The managed group found; `None`: it is created.
    pub(super) group: Option<LiveGroup>,
    /// Owned endpoints to delete (in one call), each with why.
    pub(super) delete: Vec<Deletion>,
    pub(super) endpoint: EndpointStep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Deletion {
    pub(super) id: String,
    pub(super) why: String,
}

/// What becomes of the endpoint.
#[derive(Debug)]
pub(super) enum EndpointStep {
    /// The endpoint found stays; `adopt`: it is the one named in `spec.adopt`, tagged first.
    Keep { live: LiveEndpoint, adopt: bool },
    /// None found: one is made.
    Create,
    /// None found and none can be made now: the reconcile ends with this error, after the group
    /// and the deletions.
    Refuse(Error),
}

pub(super) fn plan_owned(
    observed: ObservedOwned,
    create: &CreateEndpointSpec,
    status: &PrivateApiStatus,
) -> OwnedPlan {
    let ObservedOwned { group, endpoints } = observed;
    // Duplicates (a past double create) and failed endpoints go. Not the endpoint status named
    // when `spec.adopt` names another: clients go through it until the stage serves a policy
    // without it (released by the reconciler then, see `crate::retiring`).
    let delete = endpoints
        .duplicates
        .iter()
        .filter(|e| {
            !status.serving_until_now(
                RetiringResource::VPC_ENDPOINT,
                status.vpc_endpoint_id.as_deref(),
                &e.id,
            )
        })
        .chain(&endpoints.failed)
        .map(|e| Deletion {
            id: e.id.clone(),
            why: why_deleted(e),
        })
        .collect();
    let endpoint = match endpoints.keep {
        Some(live) => EndpointStep::Keep {
            live,
            adopt: endpoints.adopting,
        },
        None => match (endpoints.failed.first(), endpoints.deleting.first()) {
            // Creating again would most likely fail again: wait for a spec change.
            (Some(failed), _) => EndpointStep::Refuse(invalid(
                FIELD_CREATE,
                format!(
                    "VPC endpoint {} {}{}; the operator deleted it and creates a new one when the spec changes",
                    failed.id,
                    failed.state,
                    failed
                        .last_error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            )),
            // Our endpoint deleted outside the operator keeps the VPC's private DNS name while
            // it is `deleting`: creating now is refused with a DNS conflict, which was taken for
            // InvalidSpec and never retried (no endpoint for good). Look again shortly.
            (None, Some(going)) if create.private_dns => {
                EndpointStep::Refuse(Error::CleanupInProgress(format!(
                    "VPC endpoint {going} is still deleting and holds the VPC's private DNS name; \
                     its replacement is created once it is gone"
                )))
            }
            _ => EndpointStep::Create,
        },
    };
    OwnedPlan {
        check_references: group.is_none() || !matches!(endpoint, EndpointStep::Keep { .. }),
        group,
        delete,
        endpoint,
    }
}

fn why_deleted(endpoint: &LiveEndpoint) -> String {
    match &endpoint.last_error {
        Some(error) if endpoint.lifecycle() == Lifecycle::Failed => {
            format!("it is {}: {error}", endpoint.state)
        }
        _ if endpoint.lifecycle() == Lifecycle::Failed => format!("it is {}", endpoint.state),
        _ => "a duplicate owned by this object".to_string(),
    }
}

/// What a kept endpoint needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EndpointUpdate {
    InSync,
    /// EC2 may refuse to modify an endpoint that is still being set up; come back when it is
    /// available (the reconciler requeues pending endpoints).
    WaitUntilAvailable(EndpointDiff),
    Modify(EndpointDiff),
}

pub(super) fn plan_update(live: &LiveEndpoint, desired: &DesiredEndpoint) -> EndpointUpdate {
    let diff = diff_endpoint(live, desired);
    if diff.is_empty() {
        EndpointUpdate::InSync
    } else if live.lifecycle() == Lifecycle::Pending {
        EndpointUpdate::WaitUntilAvailable(diff)
    } else {
        EndpointUpdate::Modify(diff)
    }
}

/// The tags to add, in one CreateTags: ownership (a new UID after the object was re-created)
/// and spec.tags.
#[derive(Debug, Default)]
pub(super) struct Retag {
    /// The resources that lack some of the tags.
    pub(super) ids: Vec<String>,
    pub(super) changes: Vec<Change>,
}

pub(super) fn plan_retag(
    owner: &Owner,
    tags: &BTreeMap<String, String>,
    group: &LiveGroup,
    endpoint: &LiveEndpoint,
) -> Retag {
    let mut retag = Retag::default();
    for (resource, kind, id, live_tags) in [
        ("security group", "SecurityGroup", &group.id, &group.tags),
        ("VPC endpoint", "VpcEndpoint", &endpoint.id, &endpoint.tags),
    ] {
        let missing = missing_tags(tags, live_tags);
        if missing.is_empty() {
            continue;
        }
        retag.ids.push(id.clone());
        retag.changes.push(match live_tags.get(TAG_UID) {
            Some(uid) if owns(owner, live_tags) && uid != &owner.uid => {
                Change::adopted(kind, id, AdoptedFrom::PreviousObject(uid.clone()))
            }
            _ => Change::new(
                "Updated",
                format!("{resource} {id}"),
                format!(
                    "tags {}",
                    missing.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
        });
    }
    retag
}
