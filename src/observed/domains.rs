//! The direct reads of a private custom domain name and what it needs: the domain name, its
//! access associations and base path mappings (API Gateway), the certificate (ACM), the hosted
//! zone and the record (Route 53).

use std::collections::BTreeMap;

use aws_sdk_apigateway::types::ResourceOwner;
use aws_sdk_route53::types::RrType;

use crate::aws::RegionClients;
use crate::error::{AwsResultExt, NotFoundExt, Result};
use crate::model::{
    LiveAssociation, LiveCertificate, LiveDomain, LiveHostedZone, LiveMapping, LiveRecord,
};

/// A `LiveDomain` from GetDomainName's output or a GetDomainNames item (the same fields).
macro_rules! live_domain {
    ($d:expr) => {{
        let d = $d;
        let endpoint_types = types_of(d.endpoint_configuration());
        match (d.domain_name, d.domain_name_id) {
            (Some(name), Some(id)) => Some(LiveDomain {
                name,
                id,
                arn: d.domain_name_arn.unwrap_or_default(),
                certificate_arn: d.certificate_arn,
                security_policy: d.security_policy.map(|p| p.as_str().to_string()),
                policy: d.policy,
                endpoint_types,
                tags: d
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            }),
            _ => None,
        }
    }};
}

fn types_of(config: Option<&aws_sdk_apigateway::types::EndpointConfiguration>) -> Vec<String> {
    config
        .map(|c| c.types().iter().map(|t| t.as_str().to_string()).collect())
        .unwrap_or_default()
}

/// GetDomainName of a private domain name; None when it does not exist.
pub(super) async fn domain(
    aws: &RegionClients,
    name: &str,
    id: &str,
) -> Result<Option<LiveDomain>> {
    let out = aws
        .apigateway
        .get_domain_name()
        .domain_name(name)
        .domain_name_id(id)
        .send()
        .await
        .aws("APIGateway", "GetDomainName")
        .or_not_found()?;
    Ok(out.and_then(|o| live_domain!(o)))
}

/// The account-region's own domain names (GetDomainNames, resourceOwner SELF, pages of 500).
pub(super) async fn domains(aws: &RegionClients) -> Result<Vec<LiveDomain>> {
    let items: std::result::Result<Vec<_>, _> = aws
        .apigateway
        .get_domain_names()
        .resource_owner(ResourceOwner::SelfValue)
        .limit(500)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    Ok(items
        .aws("APIGateway", "GetDomainNames")?
        .into_iter()
        .filter_map(|d| live_domain!(d))
        .collect())
}

/// The account-region's own access associations (GetDomainNameAccessAssociations).
pub(super) async fn associations(aws: &RegionClients) -> Result<Vec<LiveAssociation>> {
    let mut found = Vec::new();
    let mut position: Option<String> = None;
    loop {
        let out = aws
            .apigateway
            .get_domain_name_access_associations()
            .resource_owner(ResourceOwner::SelfValue)
            .limit(500)
            .set_position(position.take())
            .send()
            .await
            .aws("APIGateway", "GetDomainNameAccessAssociations")?;
        for item in out.items() {
            if let (Some(arn), Some(domain_arn), Some(source)) = (
                item.domain_name_access_association_arn(),
                item.domain_name_arn(),
                item.access_association_source(),
            ) {
                found.push(LiveAssociation {
                    arn: arn.to_string(),
                    domain_arn: domain_arn.to_string(),
                    source: source.to_string(),
                });
            }
        }
        match out.position() {
            Some(next) if !next.is_empty() => position = Some(next.to_string()),
            _ => return Ok(found),
        }
    }
}

/// The base path mappings of a private domain name (empty when it does not exist).
pub(super) async fn mappings(
    aws: &RegionClients,
    name: &str,
    id: &str,
) -> Result<Vec<LiveMapping>> {
    let items: std::result::Result<Vec<_>, _> = aws
        .apigateway
        .get_base_path_mappings()
        .domain_name(name)
        .domain_name_id(id)
        .limit(500)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    let items = match items.aws("APIGateway", "GetBasePathMappings") {
        Err(err) if err.is_not_found() => return Ok(Vec::new()),
        other => other?,
    };
    Ok(items
        .into_iter()
        .map(|m| LiveMapping {
            base_path: m.base_path.unwrap_or_else(|| "(none)".to_string()),
            rest_api_id: m.rest_api_id.unwrap_or_default(),
            stage: m.stage.unwrap_or_default(),
        })
        .collect())
}

/// DescribeCertificate; None when it does not exist.
pub(super) async fn certificate(aws: &RegionClients, arn: &str) -> Result<Option<LiveCertificate>> {
    let out = aws
        .acm
        .describe_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .aws("ACM", "DescribeCertificate")
        .or_not_found()?;
    Ok(out.and_then(|o| o.certificate).map(|c| {
        let mut names: Vec<String> = c.domain_name().map(str::to_string).into_iter().collect();
        for san in c.subject_alternative_names() {
            if !names.contains(san) {
                names.push(san.clone());
            }
        }
        LiveCertificate {
            arn: arn.to_string(),
            status: c
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            names,
        }
    }))
}

/// GetHostedZone; None when it does not exist.
pub(super) async fn hosted_zone(aws: &RegionClients, id: &str) -> Result<Option<LiveHostedZone>> {
    let out = aws
        .route53
        .get_hosted_zone()
        .id(id)
        .send()
        .await
        .aws("Route 53", "GetHostedZone")
        .or_not_found()?;
    Ok(out.and_then(|o| o.hosted_zone).map(|z| LiveHostedZone {
        id: z.id().to_string(),
        name: z.name().to_string(),
        private: z.config().is_some_and(|c| c.private_zone()),
    }))
}

/// The CNAME `name` of the zone, if it exists.
pub(super) async fn cname(
    aws: &RegionClients,
    zone: &str,
    name: &str,
) -> Result<Option<LiveRecord>> {
    let fqdn = absolute(name);
    let out = aws
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(&fqdn)
        .start_record_type(RrType::Cname)
        .max_items(1)
        .send()
        .await
        .aws("Route 53", "ListResourceRecordSets")?;
    Ok(out
        .resource_record_sets()
        .iter()
        .find(|r| absolute(r.name()) == fqdn && r.r#type() == &RrType::Cname)
        .map(|r| LiveRecord {
            name: name.to_string(),
            target: r
                .resource_records()
                .first()
                .map(|v| v.value().trim_end_matches('.').to_string())
                .unwrap_or_default(),
        }))
}

/// `name.` (Route 53 answers names absolute).
pub fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}
