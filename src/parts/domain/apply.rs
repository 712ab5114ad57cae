//! The domain part's writes: each step of a [`DomainPlan`], and the removal of a domain name.

use aws_sdk_apigateway::types::{
    AccessAssociationSourceType, EndpointConfiguration, EndpointType, Op, PatchOperation,
    SecurityPolicy,
};
use aws_sdk_route53::types::{
    Change as RecordChange, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};

use super::desired::{DesiredDomain, DomainPlan, LiveDomainState};
use super::{change, sorted};
use crate::aws::apigateway_without_retries;
use crate::crd::{AccessAssociation, DomainStatus};
use crate::error::{AwsResultExt, Error, NotFoundExt, Result};
use crate::model::{LiveDomain, LiveRecord};
use crate::observed::Reader;
use crate::parts::{Change, PartContext};

const SERVICE: &str = "APIGateway";
/// The TTL of the record the operator publishes.
const RECORD_TTL: i64 = 60;

fn replace(path: &str, value: &str) -> PatchOperation {
    PatchOperation::builder()
        .op(Op::Replace)
        .path(path)
        .value(value)
        .build()
}

/// CreateDomainName: PRIVATE, with the certificate, the security policy, the policy and the tags.
pub(super) async fn create_domain(
    ctx: &PartContext<'_>,
    desired: &DesiredDomain,
) -> Result<(LiveDomain, Change)> {
    let out = ctx
        .aws
        .apigateway
        .create_domain_name()
        .domain_name(&desired.name)
        .certificate_arn(&desired.certificate_arn)
        .security_policy(SecurityPolicy::from(desired.security_policy))
        .endpoint_configuration(
            EndpointConfiguration::builder()
                .types(EndpointType::Private)
                .build(),
        )
        .policy(desired.policy.to_string())
        .set_tags(Some(desired.tags.clone().into_iter().collect()))
        // No idempotency token, and private names may repeat: a retry after a lost response
        // would make a second domain name. The next reconcile finds the first by its tags.
        .customize()
        .config_override(apigateway_without_retries())
        .send()
        .await
        .aws(SERVICE, "CreateDomainName")?;
    let (Some(id), Some(arn)) = (out.domain_name_id.clone(), out.domain_name_arn.clone()) else {
        return Err(Error::Unexpected {
            operation: "CreateDomainName",
            message: format!("no domainNameId or domainNameArn for {}", desired.name),
        });
    };
    let domain = LiveDomain {
        name: desired.name.clone(),
        id: id.clone(),
        arn,
        certificate_arn: Some(desired.certificate_arn.clone()),
        security_policy: Some(desired.security_policy.to_string()),
        policy: out.policy,
        endpoint_types: vec!["PRIVATE".into()],
        tags: desired.tags.clone(),
    };
    let created = change(
        "Created",
        format!("private domain name {} ({id})", desired.name),
        format!("certificate {}", desired.certificate_arn),
    );
    Ok((domain, created))
}

/// Apply `plan`; returns the endpoints' associations as they now are, and what changed.
pub(super) async fn apply(
    ctx: &PartContext<'_>,
    live: &LiveDomainState,
    desired: &DesiredDomain,
    plan: &DomainPlan,
) -> Result<(Vec<AccessAssociation>, Vec<Change>)> {
    let domain = &live.domain;
    let what = format!("private domain name {} ({})", domain.name, domain.id);
    let mut changes = Vec::new();
    let mut patch = Vec::new();
    if plan.policy {
        patch.push(replace("/policy", &desired.policy.to_string()));
    }
    if plan.certificate {
        patch.push(replace("/certificateArn", &desired.certificate_arn));
    }
    if plan.security_policy {
        patch.push(replace("/securityPolicy", desired.security_policy));
    }
    if !patch.is_empty() {
        let paths: Vec<String> = patch.iter().filter_map(|p| p.path.clone()).collect();
        ctx.aws
            .apigateway
            .update_domain_name()
            .domain_name(&domain.name)
            .domain_name_id(&domain.id)
            .set_patch_operations(Some(patch))
            .send()
            .await
            .aws(SERVICE, "UpdateDomainName")?;
        changes.push(change("Updated", what.clone(), paths.join(", ")));
    }
    if !plan.tags.is_empty() {
        ctx.aws
            .apigateway
            .tag_resource()
            .resource_arn(&domain.arn)
            .set_tags(Some(plan.tags.clone().into_iter().collect()))
            .send()
            .await
            .aws(SERVICE, "TagResource")?;
        changes.push(change("Updated", what.clone(), "ownership and spec tags"));
    }
    let mut associations: Vec<AccessAssociation> = live
        .associations
        .iter()
        .filter(|a| desired.endpoints.contains(&a.source))
        .map(|a| AccessAssociation {
            vpc_endpoint_id: a.source.clone(),
            arn: a.arn.clone(),
        })
        .collect();
    for endpoint in &plan.associate {
        let out = ctx
            .aws
            .apigateway
            .create_domain_name_access_association()
            .domain_name_arn(&domain.arn)
            .access_association_source_type(AccessAssociationSourceType::Vpce)
            .access_association_source(endpoint)
            .set_tags(Some(desired.tags.clone().into_iter().collect()))
            // A retry after a lost response would be refused as a conflict with itself: the
            // next reconcile finds the association instead.
            .customize()
            .config_override(apigateway_without_retries())
            .send()
            .await
            .aws(SERVICE, "CreateDomainNameAccessAssociation")?;
        associations.push(AccessAssociation {
            vpc_endpoint_id: endpoint.clone(),
            arn: out.domain_name_access_association_arn.unwrap_or_default(),
        });
        changes.push(change(
            "Created",
            format!("access association of {endpoint}"),
            what.clone(),
        ));
    }
    if let Some(wrong) = &plan.replace_mapping {
        delete_mapping(ctx, domain, &wrong.base_path).await?;
    }
    if plan.create_mapping || plan.replace_mapping.is_some() {
        let mut request = ctx
            .aws
            .apigateway
            .create_base_path_mapping()
            .domain_name(&domain.name)
            .domain_name_id(&domain.id)
            .rest_api_id(&desired.mapping.rest_api_id)
            .stage(&desired.mapping.stage);
        if desired.mapping.base_path != crate::crd::NO_BASE_PATH {
            request = request.base_path(&desired.mapping.base_path);
        }
        // As for the association: a retry would conflict with the mapping it made.
        request
            .customize()
            .config_override(apigateway_without_retries())
            .send()
            .await
            .aws(SERVICE, "CreateBasePathMapping")?;
        changes.push(change(
            "Created",
            format!("base path mapping {} of {what}", desired.mapping.base_path),
            format!(
                "to stage {} of REST API {}",
                desired.mapping.stage, desired.mapping.rest_api_id
            ),
        ));
    }
    if let (true, Some((zone, record))) = (plan.upsert_record, &desired.record) {
        change_record(ctx, zone, ChangeAction::Upsert, record).await?;
        changes.push(change(
            "Updated",
            format!("record {} in hosted zone {zone}", record.name),
            format!("CNAME {}", record.target),
        ));
    }
    // What the spec no longer names goes last, once the new serves.
    for stale in &plan.stale_mappings {
        delete_mapping(ctx, domain, &stale.base_path).await?;
        changes.push(change(
            "Deleted",
            format!("base path mapping {} of {what}", stale.base_path),
            "not spec.domain.basePath",
        ));
    }
    for gone in &plan.disassociate {
        delete_association(ctx, &gone.arn).await?;
        changes.push(change(
            "Deleted",
            format!("access association of {}", gone.source),
            what.clone(),
        ));
    }
    Ok((sorted(associations), changes))
}

async fn delete_mapping(ctx: &PartContext<'_>, domain: &LiveDomain, base_path: &str) -> Result<()> {
    ctx.aws
        .apigateway
        .delete_base_path_mapping()
        .domain_name(&domain.name)
        .domain_name_id(&domain.id)
        .base_path(base_path)
        .send()
        .await
        .aws(SERVICE, "DeleteBasePathMapping")
        .or_not_found()?;
    Ok(())
}

async fn delete_association(ctx: &PartContext<'_>, arn: &str) -> Result<()> {
    ctx.aws
        .apigateway
        .delete_domain_name_access_association()
        .domain_name_access_association_arn(arn)
        .send()
        .await
        .aws(SERVICE, "DeleteDomainNameAccessAssociation")
        .or_not_found()?;
    Ok(())
}

async fn change_record(
    ctx: &PartContext<'_>,
    zone: &str,
    action: ChangeAction,
    record: &LiveRecord,
) -> Result<()> {
    let build = |what: &str, e: aws_sdk_route53::error::BuildError| Error::Unexpected {
        operation: "ChangeResourceRecordSets",
        message: format!("{what}: {e}"),
    };
    let set = ResourceRecordSet::builder()
        .name(&record.name)
        .r#type(RrType::Cname)
        .ttl(RECORD_TTL)
        .resource_records(
            ResourceRecord::builder()
                .value(&record.target)
                .build()
                .map_err(|e| build("record value", e))?,
        )
        .build()
        .map_err(|e| build("record set", e))?;
    let batch = ChangeBatch::builder()
        .changes(
            RecordChange::builder()
                .action(action)
                .resource_record_set(set)
                .build()
                .map_err(|e| build("change", e))?,
        )
        .build()
        .map_err(|e| build("change batch", e))?;
    ctx.aws
        .route53
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
        .aws("Route 53", "ChangeResourceRecordSets")?;
    Ok(())
}

/// Remove the domain name `known` in dependency order: its record (in the zone status names),
/// its mappings, its associations, then the domain name. What is already gone is skipped.
pub(super) async fn remove(ctx: &PartContext<'_>, known: &DomainStatus) -> Result<Vec<Change>> {
    let reader = Reader::direct(ctx.aws);
    let what = format!(
        "private domain name {} ({})",
        known.name, known.domain_name_id
    );
    let mut changes = Vec::new();
    if let Some(zone) = known.hosted_zone_id.as_deref()
        && let Some(record) = reader.cname(zone, &known.name).await?
    {
        change_record(ctx, zone, ChangeAction::Delete, &record).await?;
        changes.push(change(
            "Deleted",
            format!("record {} in hosted zone {zone}", known.name),
            "CNAME",
        ));
    }
    let Some(domain) = reader.domain(&known.name, &known.domain_name_id).await? else {
        return Ok(changes);
    };
    for mapping in reader.base_path_mappings(&domain.name, &domain.id).await? {
        delete_mapping(ctx, &domain, &mapping.base_path).await?;
    }
    for association in reader.domain_associations().await? {
        if association.domain_arn == domain.arn {
            delete_association(ctx, &association.arn).await?;
        }
    }
    ctx.aws
        .apigateway
        .delete_domain_name()
        .domain_name(&domain.name)
        .domain_name_id(&domain.id)
        .send()
        .await
        .aws(SERVICE, "DeleteDomainName")
        .or_not_found()?;
    changes.push(change(
        "Deleted",
        what,
        "with its mappings and access associations",
    ));
    Ok(changes)
}
