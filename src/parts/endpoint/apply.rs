//! The calls that change the endpoint.

use aws_sdk_ec2::types::{ResourceType, VpcEndpointType};

use super::SERVICE;
use super::endpoint_diff::{DesiredEndpoint, EndpointDiff, canonical_create_params};
use super::model::{Lifecycle, LiveEndpoint, service_name};
use super::sdk::tag_specification;
use super::validate::rejected;
use crate::crd::CreateEndpointSpec;
use crate::error::{AwsErrorKind, AwsResultExt, Error, NotFoundExt, Result, classify};
use crate::parts::PartContext;

/// CreateVpcEndpoint with a ClientToken derived from the parameters and the endpoint last in
/// status: a retry after a lost response or a crash returns the endpoint made the first time.
pub(super) async fn create_endpoint(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
    desired: &DesiredEndpoint,
) -> Result<LiveEndpoint> {
    let tags = ctx.tags();
    let params = canonical_create_params(&ctx.aws.region, create, desired, &tags);
    let mut previous = ctx.status.vpc_endpoint_id.clone();
    // A token whose endpoint has since been deleted keeps returning it (EC2 remembers tokens for
    // a while): derive the next token from that endpoint, which is as deterministic as the first.
    for _ in 0..4 {
        let token = ctx
            .owner
            .endpoint_client_token(&params, previous.as_deref());
        let out = ctx
            .aws
            .ec2
            .create_vpc_endpoint()
            .vpc_endpoint_type(VpcEndpointType::Interface)
            .vpc_id(&create.vpc_id)
            .service_name(service_name(&ctx.aws.region))
            .set_subnet_ids(Some(desired.subnet_ids.iter().cloned().collect()))
            .set_security_group_ids(Some(desired.security_group_ids.iter().cloned().collect()))
            .private_dns_enabled(desired.private_dns)
            .tag_specifications(tag_specification(ResourceType::VpcEndpoint, &tags))
            .client_token(token)
            .send()
            .await
            .aws(SERVICE, "CreateVpcEndpoint")
            .map_err(|err| rejected(err, create))?;
        let live = out
            .vpc_endpoint()
            .and_then(LiveEndpoint::from_sdk)
            .ok_or_else(|| Error::Unexpected {
                operation: "CreateVpcEndpoint",
                message: "no VpcEndpoint in the answer".into(),
            })?;
        match live.lifecycle() {
            Lifecycle::Gone | Lifecycle::Failed => previous = Some(live.id),
            _ => return Ok(live),
        }
    }
    Err(Error::Unexpected {
        operation: "CreateVpcEndpoint",
        message: "every ClientToken tried returned an endpoint that is deleted or failed".into(),
    })
}

pub(super) async fn modify_endpoint(
    ctx: &PartContext<'_>,
    id: &str,
    diff: &EndpointDiff,
    create: &CreateEndpointSpec,
) -> Result<()> {
    let non_empty = |ids: &[String]| (!ids.is_empty()).then(|| ids.to_vec());
    ctx.aws
        .ec2
        .modify_vpc_endpoint()
        .vpc_endpoint_id(id)
        .set_add_subnet_ids(non_empty(&diff.add_subnet_ids))
        .set_remove_subnet_ids(non_empty(&diff.remove_subnet_ids))
        .set_add_security_group_ids(non_empty(&diff.add_security_group_ids))
        .set_remove_security_group_ids(non_empty(&diff.remove_security_group_ids))
        .set_private_dns_enabled(diff.private_dns)
        .send()
        .await
        .aws(SERVICE, "ModifyVpcEndpoint")
        .map_err(|err| rejected(err, create))?;
    Ok(())
}

/// DeleteVpcEndpoints; an endpoint already gone is done.
pub(super) async fn delete_endpoints(ctx: &PartContext<'_>, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let out = ctx
        .aws
        .ec2
        .delete_vpc_endpoints()
        .set_vpc_endpoint_ids(Some(ids.to_vec()))
        .send()
        .await
        .aws(SERVICE, "DeleteVpcEndpoints")
        .or_not_found()?;
    // Per-endpoint failures come back as Unsuccessful items of a 200 answer.
    for item in out.as_ref().map(|o| o.unsuccessful()).unwrap_or_default() {
        let code = item.error().and_then(|e| e.code()).unwrap_or("Unknown");
        let kind = classify(code, None);
        if kind == AwsErrorKind::NotFound {
            continue;
        }
        return Err(Error::Aws {
            service: SERVICE,
            operation: "DeleteVpcEndpoints",
            code: code.to_string(),
            message: format!(
                "{}: {}",
                item.resource_id().unwrap_or("?"),
                item.error()
                    .and_then(|e| e.message())
                    .unwrap_or("no message")
            ),
            kind,
        });
    }
    Ok(())
}
