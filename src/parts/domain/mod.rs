//! The private custom domain name (`spec.domain`): the domain name with its resource policy, an
//! access association per endpoint of the object, the base path mapping to the stage, and the
//! record in the user's private hosted zone. Observe → plan (pure, `desired`) → apply.
//!
//! Checked before anything is made: the certificate exists (else retried: it may come),
//! is in the object's region and covers the name (else `InvalidSpec`), and is `ISSUED` (else
//! waited for); the hosted zone exists and is private (a public one is `InvalidSpec`). A name
//! another object owns, or that exists without being this object's, is `InvalidSpec`.
//!
//! A rename makes the new name serve (domain, associations, mapping, record) before the one in
//! status goes.

mod apply;
mod desired;

use std::collections::BTreeSet;

use crate::conditions::{PartState, reason};
use crate::crd::{AccessAssociation, DomainSpec, DomainStatus};
use crate::error::{Error, Result};
use crate::model::LiveDomain;
use crate::parts::{Change, Cleanup, Outcome, PartContext};

pub use desired::{
    DesiredDomain, DomainPlan, LiveDomainState, covers, plan, policy_arn, policy_equivalent,
};

pub const FIELD_NAME: &str = "spec.domain.name";
pub const FIELD_CERTIFICATE: &str = "spec.domain.certificateArn";
pub const FIELD_ZONE: &str = "spec.domain.hostedZoneId";

/// What the domain name serves and through what: from the other parts.
#[derive(Debug, Clone)]
pub struct DomainTarget<'a> {
    pub rest_api_id: &'a str,
    pub stage: &'a str,
    /// Every endpoint of the object (owned or referenced, and the additional ones).
    pub endpoints: BTreeSet<String>,
    /// The DNS name of the object's endpoint, for the record.
    pub endpoint_dns: Option<&'a str>,
}

/// Make the domain name match `spec.domain` (or, when the spec has none, remove what status
/// names). The value is what goes to `status.domain`.
pub async fn reconcile(
    ctx: &PartContext<'_>,
    target: &DomainTarget<'_>,
) -> Result<Outcome<Option<DomainStatus>>> {
    let Some(spec) = &ctx.spec.domain else {
        let removed = cleanup(ctx).await?;
        return Ok(Outcome {
            value: None,
            state: PartState::ready(reason::AVAILABLE, "no custom domain name"),
            changes: removed.changes,
        });
    };
    check_certificate(ctx, spec).await?;
    if let Some(zone) = &spec.hosted_zone_id {
        check_zone(ctx, zone).await?;
    }
    let desired = DesiredDomain::new(
        spec,
        ctx.tags(),
        target.endpoints.clone(),
        target.rest_api_id,
        target.stage,
        target.endpoint_dns,
    );
    let mut changes = Vec::new();
    let domain = match find(ctx, spec).await? {
        Some(domain) => domain,
        None => {
            let (domain, created) = apply::create_domain(ctx, &desired).await?;
            changes.push(created);
            domain
        }
    };
    let live = observe(ctx, domain, spec).await?;
    let execute_arn = policy_arn(
        &ctx.aws.region,
        &ctx.aws.account_id,
        &live.domain.name,
        &live.domain.id,
    );
    let plan = plan(&live, &desired, &execute_arn);
    let (associations, applied) = apply::apply(ctx, &live, &desired, &plan).await?;
    changes.extend(applied);
    // Make-before-break: the name status names goes once the new one serves.
    if let Some(old) = ctx
        .status
        .domain
        .as_ref()
        .filter(|old| old.name != spec.name)
    {
        changes.extend(apply::remove(ctx, old).await?);
    }
    let status = DomainStatus {
        name: live.domain.name.clone(),
        domain_name_id: live.domain.id.clone(),
        domain_name_arn: live.domain.arn.clone(),
        hosted_zone_id: spec.hosted_zone_id.clone(),
        access_associations: associations,
    };
    Ok(Outcome {
        value: Some(status),
        state: PartState::ready(
            reason::AVAILABLE,
            format!(
                "private domain name {} ({}) serves stage {} through {} endpoint(s)",
                spec.name,
                live.domain.id,
                target.stage,
                desired.endpoints.len()
            ),
        ),
        changes,
    })
}

/// Ok when the certificate can serve `spec.name`. One that does not exist (yet) is
/// `ReferenceNotFound`, one not issued yet `ReferenceNotReady` (both looked at again on a capped
/// backoff: validation takes minutes); one of another region, or that does not cover the name,
/// is `InvalidSpec`.
async fn check_certificate(ctx: &PartContext<'_>, spec: &DomainSpec) -> Result<()> {
    let arn = &spec.certificate_arn;
    let region = arn.split(':').nth(3).unwrap_or_default();
    if region != ctx.aws.region {
        return Err(Error::InvalidSpec {
            field: FIELD_CERTIFICATE.into(),
            message: format!(
                "certificate {arn} is in {region}, but this PrivateApi is in {}: a private domain name needs a certificate of its own region",
                ctx.aws.region
            ),
        });
    }
    let Some(certificate) = ctx.reader.certificate(arn).await? else {
        return Err(Error::reference_not_found(
            FIELD_CERTIFICATE,
            format!("certificate {arn} does not exist (yet)"),
        ));
    };
    if !covers(&certificate.names, &spec.name) {
        return Err(Error::InvalidSpec {
            field: FIELD_CERTIFICATE.into(),
            message: format!(
                "certificate {arn} is for {}, which does not cover {}",
                certificate.names.join(", "),
                spec.name
            ),
        });
    }
    if certificate.status != "ISSUED" {
        return Err(Error::ReferenceNotReady {
            field: FIELD_CERTIFICATE.into(),
            message: format!(
                "waiting for certificate {arn} to be issued (it is {})",
                certificate.status
            ),
        });
    }
    Ok(())
}

/// The zone must exist (else retried) and be private.
async fn check_zone(ctx: &PartContext<'_>, zone: &str) -> Result<()> {
    let Some(found) = ctx.reader.hosted_zone(zone).await? else {
        return Err(Error::reference_not_found(
            FIELD_ZONE,
            format!("hosted zone {zone} does not exist (yet)"),
        ));
    };
    if !found.private {
        return Err(Error::InvalidSpec {
            field: FIELD_ZONE.into(),
            message: format!(
                "hosted zone {zone} ({}) is public: the name of a private domain name goes in a private hosted zone associated with the endpoint's VPC",
                found.name
            ),
        });
    }
    Ok(())
}

/// This object's domain name called `spec.name`: the one status names, else one tagged as this
/// object's. One of that name owned by someone else is `InvalidSpec`.
async fn find(ctx: &PartContext<'_>, spec: &DomainSpec) -> Result<Option<LiveDomain>> {
    if let Some(known) = ctx.status.domain.as_ref().filter(|d| d.name == spec.name)
        && let Some(domain) = ctx
            .reader
            .domain(&known.name, &known.domain_name_id)
            .await?
    {
        return Ok(Some(domain));
    }
    let mut ours = None;
    for domain in ctx.reader.domains().await? {
        if domain.name != spec.name || !domain.endpoint_types.iter().any(|t| t == "PRIVATE") {
            continue;
        }
        let tags = || domain.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if ctx.owner.owns(tags()) {
            ours = Some(domain);
            continue;
        }
        let holder = ctx
            .owner
            .claimed_by_other(tags())
            .unwrap_or_else(|| "no PrivateApi (made outside the operator)".to_string());
        return Err(Error::InvalidSpec {
            field: FIELD_NAME.into(),
            message: format!(
                "{} is already a private domain name ({}) of {holder}",
                spec.name, domain.id
            ),
        });
    }
    Ok(ours)
}

/// The domain name's associations, mappings and record.
async fn observe(
    ctx: &PartContext<'_>,
    domain: LiveDomain,
    spec: &DomainSpec,
) -> Result<LiveDomainState> {
    let associations = ctx
        .reader
        .domain_associations()
        .await?
        .into_iter()
        .filter(|a| a.domain_arn == domain.arn)
        .collect();
    let mappings = ctx
        .reader
        .base_path_mappings(&domain.name, &domain.id)
        .await?;
    let record = match &spec.hosted_zone_id {
        Some(zone) => ctx.reader.cname(zone, &spec.name).await?,
        None => None,
    };
    Ok(LiveDomainState {
        domain,
        associations,
        mappings,
        record,
    })
}

/// Remove the domain name status names (record, mappings, associations, domain), for a deletion
/// or a spec without `domain`.
pub async fn cleanup(ctx: &PartContext<'_>) -> Result<Cleanup> {
    let Some(known) = &ctx.status.domain else {
        return Ok(Cleanup {
            done: true,
            changes: Vec::new(),
        });
    };
    Ok(Cleanup {
        done: true,
        changes: apply::remove(ctx, known).await?,
    })
}

/// `status.domain`'s associations, in a stable order.
fn sorted(mut associations: Vec<AccessAssociation>) -> Vec<AccessAssociation> {
    associations.sort();
    associations.dedup();
    associations
}

fn change(action: &'static str, resource: String, detail: impl Into<String>) -> Change {
    Change::new(action, resource, detail)
}
