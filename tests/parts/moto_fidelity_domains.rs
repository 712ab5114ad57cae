//! Fidelity tests for private custom domain names (API Gateway), and the ACM and Route 53 calls
//! they need, against the test bed's corrected moto (`testbed/moto/domains.py`), with the real
//! Rust SDK clients. One test per correction (README "Corrections", rows D1-D7), each failing on
//! plain moto (`PAPI_MOTO_CORRECTIONS=0`), plus `domain_operator_calls_work`, which walks every
//! call the operator makes for a domain in the operator's order. Every test makes its own
//! resources (names from `unique`, its own VPC and endpoint), so they run in parallel.

use std::time::Duration;

use aws_sdk_acm::types::{CertificateStatus, ValidationMethod};
use aws_sdk_apigateway::types::{
    AccessAssociationSourceType, EndpointConfiguration, EndpointType, Op, PatchOperation,
    ResourceOwner, SecurityPolicy,
};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType, Vpc,
    VpcRegion,
};

use super::moto_fidelity::{
    ACCOUNT, POLL, REGION, code_and_status, expect_failures, failure, operator_policy, sdk_config,
};
use crate::support::{make, poll, unique};

struct Aws {
    ec2: aws_sdk_ec2::Client,
    apigw: aws_sdk_apigateway::Client,
    acm: aws_sdk_acm::Client,
    route53: aws_sdk_route53::Client,
}

async fn aws() -> Aws {
    let cfg = sdk_config().await;
    Aws {
        ec2: aws_sdk_ec2::Client::new(&cfg),
        apigw: aws_sdk_apigateway::Client::new(&cfg),
        acm: aws_sdk_acm::Client::new(&cfg),
        route53: aws_sdk_route53::Client::new(&cfg),
    }
}

/// A unique private domain name under `.papi.internal`.
fn domain(prefix: &str) -> String {
    format!("{}.papi.internal", unique(prefix))
}

/// Imports a self-signed certificate for `name`; its ARN.
async fn imported_certificate(aws: &Aws, name: &str) -> String {
    make::imported_certificate(&aws.acm, name).await
}

fn private() -> EndpointConfiguration {
    EndpointConfiguration::builder()
        .types(EndpointType::Private)
        .build()
}

/// The policy the operator writes on a domain name: only `vpce` may invoke it.
fn domain_policy(vpce: &[&str]) -> String {
    operator_policy(vpce)
}

/// CreateDomainName as the operator sends it; (name, id, ARN).
async fn create_private_domain(
    aws: &Aws,
    name: &str,
    cert: &str,
    policy: &str,
) -> aws_sdk_apigateway::operation::create_domain_name::CreateDomainNameOutput {
    aws.apigw
        .create_domain_name()
        .domain_name(name)
        .certificate_arn(cert)
        .security_policy(SecurityPolicy::Tls12)
        .endpoint_configuration(private())
        .policy(policy)
        .tags("privateapi.io/uid", name)
        .send()
        .await
        .expect("CreateDomainName")
}

/// A private REST API with one deployed stage `v1`; its id.
async fn private_api_with_stage(aws: &Aws, stage: &str) -> String {
    let id = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-dn-api"))
        .endpoint_configuration(private())
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    let root = aws
        .apigw
        .get_resources()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .find(|r| r.path() == Some("/"))
        .and_then(|r| r.id().map(str::to_string))
        .unwrap();
    aws.apigw
        .put_method()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .authorization_type("NONE")
        .send()
        .await
        .unwrap();
    aws.apigw
        .put_integration()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .r#type(aws_sdk_apigateway::types::IntegrationType::Mock)
        .send()
        .await
        .unwrap();
    let dep = aws
        .apigw
        .create_deployment()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    aws.apigw
        .create_stage()
        .rest_api_id(&id)
        .stage_name(stage)
        .deployment_id(dep)
        .send()
        .await
        .unwrap();
    id
}

/// A fresh VPC (10.`octet`.0.0/16) and an execute-api interface endpoint in it; the endpoint.
async fn endpoint(aws: &Aws, octet: u8) -> (String, String) {
    let vpc = crate::support::make_vpc(&aws.ec2, octet).await;
    let clients = crate::support::aws().await;
    let vpce = make::execute_api_endpoint_in(
        &clients,
        &vpc.vpc_id,
        &vpc.subnet_ids,
        &vpc.client_sg_id,
        false,
    )
    .await;
    (vpc.vpc_id, vpce)
}

/// The policy as read back, parsed.
fn parsed(policy: Option<&str>) -> serde_json::Value {
    serde_json::from_str(policy.expect("a policy")).expect("the policy is plain JSON")
}

// ---------------------------------------------------------------------------------------------
// corrections
// ---------------------------------------------------------------------------------------------

/// D1: a private domain name has an id and an ARN, its policy comes back as plain minified JSON
/// with `execute-api:` expanded to the domain name's execute-api ARN; certificate checks.
#[tokio::test]
async fn apigw_private_domain_name_has_id_arn_and_policy() {
    let aws = aws().await;
    let name = domain("papi-dn");
    let cert = imported_certificate(&aws, &name).await;
    let policy = domain_policy(&["vpce-0123456789abcdef0"]);
    let created = create_private_domain(&aws, &name, &cert, &policy).await;
    let id = created.domain_name_id().expect("domainNameId").to_string();
    assert!(
        id.len() == 10
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "domainNameId {id}"
    );
    let arn = format!("arn:aws:apigateway:{REGION}:{ACCOUNT}:/domainnames/{name}+{id}");
    assert_eq!(created.domain_name_arn(), Some(arn.as_str()));
    assert_eq!(
        created.domain_name_status().map(|s| s.as_str()),
        Some("AVAILABLE")
    );
    assert_eq!(created.security_policy(), Some(&SecurityPolicy::Tls12));
    assert_eq!(
        created.endpoint_configuration().map(|c| c.types().to_vec()),
        Some(vec![EndpointType::Private])
    );
    assert_eq!(created.certificate_arn(), Some(cert.as_str()));
    // The policy: plain JSON (not escaped like a REST API's), minified, execute-api expanded.
    let execute_arn = format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:/domainnames/{name}+{id}");
    let expected = policy.replace("\"execute-api:/*\"", &format!("\"{execute_arn}\""));
    assert_eq!(
        created.policy(),
        Some(expected.as_str()),
        "CreateDomainName"
    );
    assert_ne!(created.policy(), Some(policy.as_str()));
    let got = aws
        .apigw
        .get_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy(), Some(expected.as_str()), "GetDomainName");
    assert_eq!(got.domain_name_arn(), Some(arn.as_str()));
    // Without the id the call addresses the public domain name of that name: there is none.
    let (code, status, _) = failure(aws.apigw.get_domain_name().domain_name(&name).send().await);
    assert_eq!((code.as_str(), status), ("NotFoundException", 404));

    // UpdateDomainName replace /policy: the same rendering.
    let policy2 = domain_policy(&["vpce-0123456789abcdef0", "vpce-0fedcba9876543210"]);
    let updated = aws
        .apigw
        .update_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/policy")
                .value(&policy2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        parsed(updated.policy()),
        parsed(Some(
            &policy2.replace("\"execute-api:/*\"", &format!("\"{execute_arn}\""))
        ))
    );

    // The certificate must cover the name, and exist.
    let other = domain("papi-dn-other");
    let missing =
        format!("arn:aws:acm:{REGION}:{ACCOUNT}:certificate/00000000-0000-0000-0000-000000000000");
    expect_failures(vec![
        (
            ("certificate of another name", "BadRequestException", 400),
            code_and_status(
                aws.apigw
                    .create_domain_name()
                    .domain_name(&other)
                    .certificate_arn(&cert)
                    .endpoint_configuration(private())
                    .send(),
            ),
        ),
        (
            (
                "certificate that does not exist",
                "BadRequestException",
                400,
            ),
            code_and_status(
                aws.apigw
                    .create_domain_name()
                    .domain_name(&name)
                    .certificate_arn(&missing)
                    .endpoint_configuration(private())
                    .send(),
            ),
        ),
        (
            ("policy that is not JSON", "BadRequestException", 400),
            code_and_status(
                aws.apigw
                    .create_domain_name()
                    .domain_name(&name)
                    .certificate_arn(&cert)
                    .endpoint_configuration(private())
                    .policy("{not json")
                    .send(),
            ),
        ),
    ])
    .await;
    aws.apigw
        .delete_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .send()
        .await
        .unwrap();
}

/// D1: two private domain names of one name live side by side in one account; each call names
/// one by its id; GetDomainNames pages.
#[tokio::test]
async fn apigw_private_domain_names_may_share_a_name() {
    let aws = aws().await;
    let name = domain("papi-dn-twice");
    let cert = imported_certificate(&aws, &name).await;
    let policy = domain_policy(&["vpce-0123456789abcdef0"]);
    let first = create_private_domain(&aws, &name, &cert, &policy).await;
    let second = create_private_domain(&aws, &name, &cert, &policy).await;
    let (a, b) = (
        first.domain_name_id().unwrap().to_string(),
        second.domain_name_id().unwrap().to_string(),
    );
    assert_ne!(a, b, "two ids");
    for id in [&a, &b] {
        let got = aws
            .apigw
            .get_domain_name()
            .domain_name(&name)
            .domain_name_id(id)
            .send()
            .await
            .unwrap();
        assert_eq!(got.domain_name_id(), Some(id.as_str()));
    }
    // GetDomainNames (SELF), one item a page: both are listed, on different pages.
    let mut seen = Vec::new();
    let mut pages = aws
        .apigw
        .get_domain_names()
        .resource_owner(ResourceOwner::SelfValue)
        .limit(1)
        .into_paginator()
        .send();
    let mut n_pages = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        assert!(page.items().len() <= 1, "limit 1 is honoured");
        n_pages += 1;
        for d in page.items() {
            if d.domain_name() == Some(name.as_str()) {
                seen.push(d.domain_name_id().unwrap_or_default().to_string());
            }
        }
    }
    assert!(n_pages >= 2, "paged");
    seen.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(seen, want);
    // Deleting one leaves the other.
    aws.apigw
        .delete_domain_name()
        .domain_name(&name)
        .domain_name_id(&a)
        .send()
        .await
        .unwrap();
    aws.apigw
        .get_domain_name()
        .domain_name(&name)
        .domain_name_id(&b)
        .send()
        .await
        .expect("the other one is still there");
    aws.apigw
        .delete_domain_name()
        .domain_name(&name)
        .domain_name_id(&b)
        .send()
        .await
        .unwrap();
}

/// D1: DeleteDomainName removes its mappings, is refused while an access association exists,
/// and is 404 once gone.
#[tokio::test]
async fn apigw_delete_private_domain_name() {
    let aws = aws().await;
    let name = domain("papi-dn-del");
    let cert = imported_certificate(&aws, &name).await;
    let (_, vpce) = endpoint(&aws, 181).await;
    let created = create_private_domain(&aws, &name, &cert, &domain_policy(&[&vpce])).await;
    let (id, arn) = (
        created.domain_name_id().unwrap().to_string(),
        created.domain_name_arn().unwrap().to_string(),
    );
    let api = private_api_with_stage(&aws, "v1").await;
    aws.apigw
        .create_base_path_mapping()
        .domain_name(&name)
        .domain_name_id(&id)
        .rest_api_id(&api)
        .stage("v1")
        .send()
        .await
        .unwrap();
    let assoc = aws
        .apigw
        .create_domain_name_access_association()
        .domain_name_arn(&arn)
        .access_association_source_type(AccessAssociationSourceType::Vpce)
        .access_association_source(&vpce)
        .send()
        .await
        .unwrap()
        .domain_name_access_association_arn
        .unwrap();
    let (code, status, _) = failure(
        aws.apigw
            .delete_domain_name()
            .domain_name(&name)
            .domain_name_id(&id)
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), status),
        ("ConflictException", 409),
        "association held"
    );
    aws.apigw
        .delete_domain_name_access_association()
        .domain_name_access_association_arn(&assoc)
        .send()
        .await
        .unwrap();
    aws.apigw
        .delete_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .send()
        .await
        .unwrap();
    expect_failures(vec![
        (
            ("GetDomainName after delete", "NotFoundException", 404),
            code_and_status(
                aws.apigw
                    .get_domain_name()
                    .domain_name(&name)
                    .domain_name_id(&id)
                    .send(),
            ),
        ),
        (
            ("DeleteDomainName twice", "NotFoundException", 404),
            code_and_status(
                aws.apigw
                    .delete_domain_name()
                    .domain_name(&name)
                    .domain_name_id(&id)
                    .send(),
            ),
        ),
        (
            ("its mappings are gone with it", "NotFoundException", 404),
            code_and_status(
                aws.apigw
                    .get_base_path_mappings()
                    .domain_name(&name)
                    .domain_name_id(&id)
                    .send(),
            ),
        ),
    ])
    .await;
}

/// D2: access associations of a VPC endpoint with a private domain name.
#[tokio::test]
async fn apigw_domain_name_access_associations() {
    let aws = aws().await;
    let name = domain("papi-dn-assoc");
    let cert = imported_certificate(&aws, &name).await;
    let (_, vpce) = endpoint(&aws, 182).await;
    let created = create_private_domain(&aws, &name, &cert, &domain_policy(&[&vpce])).await;
    let (id, arn) = (
        created.domain_name_id().unwrap().to_string(),
        created.domain_name_arn().unwrap().to_string(),
    );
    let assoc = aws
        .apigw
        .create_domain_name_access_association()
        .domain_name_arn(&arn)
        .access_association_source_type(AccessAssociationSourceType::Vpce)
        .access_association_source(&vpce)
        .tags("privateapi.io/uid", &name)
        .send()
        .await
        .unwrap();
    let assoc_arn = format!(
        "arn:aws:apigateway:{REGION}:{ACCOUNT}:/domainnameaccessassociations/domainname/{name}+{id}/vpcesource/{vpce}"
    );
    assert_eq!(
        assoc.domain_name_access_association_arn(),
        Some(assoc_arn.as_str())
    );
    assert_eq!(assoc.domain_name_arn(), Some(arn.as_str()));
    assert_eq!(assoc.access_association_source(), Some(vpce.as_str()));
    let listed: Vec<_> = aws
        .apigw
        .get_domain_name_access_associations()
        .resource_owner(ResourceOwner::SelfValue)
        .limit(500)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|a| a.domain_name_arn() == Some(arn.as_str()))
        .map(|a| {
            (
                a.access_association_source()
                    .unwrap_or_default()
                    .to_string(),
                a.tags().and_then(|t| t.get("privateapi.io/uid")).cloned(),
            )
        })
        .collect();
    assert_eq!(listed, vec![(vpce.clone(), Some(name.clone()))]);
    let unknown_domain =
        format!("arn:aws:apigateway:{REGION}:{ACCOUNT}:/domainnames/{name}+zzzzzzzzzz");
    expect_failures(vec![
        (
            ("the same endpoint again", "ConflictException", 409),
            code_and_status(
                aws.apigw
                    .create_domain_name_access_association()
                    .domain_name_arn(&arn)
                    .access_association_source_type(AccessAssociationSourceType::Vpce)
                    .access_association_source(&vpce)
                    .send(),
            ),
        ),
        (
            (
                "an endpoint that does not exist",
                "BadRequestException",
                400,
            ),
            code_and_status(
                aws.apigw
                    .create_domain_name_access_association()
                    .domain_name_arn(&arn)
                    .access_association_source_type(AccessAssociationSourceType::Vpce)
                    .access_association_source("vpce-0123456789abcdef0")
                    .send(),
            ),
        ),
        (
            (
                "a domain name that does not exist",
                "BadRequestException",
                400,
            ),
            code_and_status(
                aws.apigw
                    .create_domain_name_access_association()
                    .domain_name_arn(&unknown_domain)
                    .access_association_source_type(AccessAssociationSourceType::Vpce)
                    .access_association_source(&vpce)
                    .send(),
            ),
        ),
    ])
    .await;
    aws.apigw
        .delete_domain_name_access_association()
        .domain_name_access_association_arn(&assoc_arn)
        .send()
        .await
        .unwrap();
    let (code, status, _) = failure(
        aws.apigw
            .delete_domain_name_access_association()
            .domain_name_access_association_arn(&assoc_arn)
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("NotFoundException", 404), "twice");
    aws.apigw
        .delete_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .send()
        .await
        .unwrap();
}

/// D3: base path mappings of a private domain name, addressed by its id.
#[tokio::test]
async fn apigw_private_base_path_mappings() {
    let aws = aws().await;
    let name = domain("papi-dn-map");
    let cert = imported_certificate(&aws, &name).await;
    let policy = domain_policy(&["vpce-0123456789abcdef0"]);
    let first = create_private_domain(&aws, &name, &cert, &policy).await;
    let second = create_private_domain(&aws, &name, &cert, &policy).await;
    let (id, other_id) = (
        first.domain_name_id().unwrap().to_string(),
        second.domain_name_id().unwrap().to_string(),
    );
    let api = private_api_with_stage(&aws, "v1").await;
    let api2 = private_api_with_stage(&aws, "v2").await;
    let public_api = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-dn-public"))
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    let m = aws
        .apigw
        .create_base_path_mapping()
        .domain_name(&name)
        .domain_name_id(&id)
        .rest_api_id(&api)
        .stage("v1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (m.base_path(), m.rest_api_id(), m.stage()),
        (Some("(none)"), Some(api.as_str()), Some("v1"))
    );
    // The other domain name of the same name has no mappings; nor has a public one.
    let other = aws
        .apigw
        .get_base_path_mappings()
        .domain_name(&name)
        .domain_name_id(&other_id)
        .send()
        .await
        .unwrap();
    assert!(other.items().is_empty(), "{other:?}");
    expect_failures(vec![
        (
            ("a second (none) mapping", "ConflictException", 409),
            code_and_status(
                aws.apigw
                    .create_base_path_mapping()
                    .domain_name(&name)
                    .domain_name_id(&id)
                    .rest_api_id(&api)
                    .stage("v1")
                    .send(),
            ),
        ),
        (
            ("a stage that does not exist", "BadRequestException", 400),
            code_and_status(
                aws.apigw
                    .create_base_path_mapping()
                    .domain_name(&name)
                    .domain_name_id(&id)
                    .rest_api_id(&api)
                    .stage("nope")
                    .base_path("orders")
                    .send(),
            ),
        ),
        (
            ("a public REST API", "BadRequestException", 400),
            code_and_status(
                aws.apigw
                    .create_base_path_mapping()
                    .domain_name(&name)
                    .domain_name_id(&id)
                    .rest_api_id(&public_api)
                    .base_path("public")
                    .send(),
            ),
        ),
        (
            (
                "the public domain name of that name",
                "NotFoundException",
                404,
            ),
            code_and_status(aws.apigw.get_base_path_mappings().domain_name(&name).send()),
        ),
        (
            (
                "UpdateBasePathMapping to a stage that does not exist",
                "BadRequestException",
                400,
            ),
            code_and_status(
                aws.apigw
                    .update_base_path_mapping()
                    .domain_name(&name)
                    .domain_name_id(&id)
                    .base_path("(none)")
                    .patch_operations(
                        PatchOperation::builder()
                            .op(Op::Replace)
                            .path("/stage")
                            .value("nope")
                            .build(),
                    )
                    .send(),
            ),
        ),
        (
            (
                "the endpoint type of a mapped API",
                "BadRequestException",
                400,
            ),
            code_and_status(
                aws.apigw
                    .update_rest_api()
                    .rest_api_id(&api)
                    .patch_operations(
                        PatchOperation::builder()
                            .op(Op::Replace)
                            .path("/endpointConfiguration/types/PRIVATE")
                            .value("REGIONAL")
                            .build(),
                    )
                    .send(),
            ),
        ),
    ])
    .await;
    // UpdateBasePathMapping: another API and its stage.
    let updated = aws
        .apigw
        .update_base_path_mapping()
        .domain_name(&name)
        .domain_name_id(&id)
        .base_path("(none)")
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/restapiId")
                .value(&api2)
                .build(),
        )
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/stage")
                .value("v2")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        (updated.rest_api_id(), updated.stage()),
        (Some(api2.as_str()), Some("v2"))
    );
    aws.apigw
        .delete_base_path_mapping()
        .domain_name(&name)
        .domain_name_id(&id)
        .base_path("(none)")
        .send()
        .await
        .unwrap();
    let (code, status, _) = failure(
        aws.apigw
            .get_base_path_mapping()
            .domain_name(&name)
            .domain_name_id(&id)
            .base_path("(none)")
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("NotFoundException", 404));
    for id in [&id, &other_id] {
        aws.apigw
            .delete_domain_name()
            .domain_name(&name)
            .domain_name_id(id)
            .send()
            .await
            .unwrap();
    }
}

/// D4: tags by a private domain name's ARN and by an access association's ARN.
#[tokio::test]
async fn apigw_tags_by_domain_name_arn() {
    let aws = aws().await;
    let name = domain("papi-dn-tags");
    let cert = imported_certificate(&aws, &name).await;
    let (_, vpce) = endpoint(&aws, 183).await;
    let created = create_private_domain(&aws, &name, &cert, &domain_policy(&[&vpce])).await;
    let (id, arn) = (
        created.domain_name_id().unwrap().to_string(),
        created.domain_name_arn().unwrap().to_string(),
    );
    let assoc = aws
        .apigw
        .create_domain_name_access_association()
        .domain_name_arn(&arn)
        .access_association_source_type(AccessAssociationSourceType::Vpce)
        .access_association_source(&vpce)
        .send()
        .await
        .unwrap()
        .domain_name_access_association_arn
        .unwrap();
    for resource in [&arn, &assoc] {
        aws.apigw
            .tag_resource()
            .resource_arn(resource)
            .tags("privateapi.io/owner", "team-a/orders")
            .send()
            .await
            .unwrap();
        let tags = aws
            .apigw
            .get_tags()
            .resource_arn(resource)
            .send()
            .await
            .unwrap()
            .tags
            .unwrap_or_default();
        assert_eq!(
            tags.get("privateapi.io/owner").map(String::as_str),
            Some("team-a/orders"),
            "{resource}"
        );
        aws.apigw
            .untag_resource()
            .resource_arn(resource)
            .tag_keys("privateapi.io/owner")
            .send()
            .await
            .unwrap();
        let tags = aws
            .apigw
            .get_tags()
            .resource_arn(resource)
            .send()
            .await
            .unwrap()
            .tags
            .unwrap_or_default();
        assert!(!tags.contains_key("privateapi.io/owner"), "{resource}");
    }
    // CreateDomainName's tags are the domain name's tags.
    let tags = aws
        .apigw
        .get_tags()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default();
    assert_eq!(tags.get("privateapi.io/uid"), Some(&name));
    aws.apigw
        .delete_domain_name_access_association()
        .domain_name_access_association_arn(&assoc)
        .send()
        .await
        .unwrap();
    aws.apigw
        .delete_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .send()
        .await
        .unwrap();
    let (code, status, _) = failure(aws.apigw.get_tags().resource_arn(&arn).send().await);
    assert_eq!((code.as_str(), status), ("NotFoundException", 404), "gone");
}

/// D5: a requested certificate stays PENDING_VALIDATION until its own validation CNAME is in
/// the public zone; an imported one is ISSUED at once with the certificate's names.
#[tokio::test]
async fn acm_requested_certificate_waits_for_its_dns_record() {
    let aws = aws().await;
    // Imported: ISSUED, names from the certificate.
    let name = domain("papi-cert");
    let imported = imported_certificate(&aws, &name).await;
    let c = aws
        .acm
        .describe_certificate()
        .certificate_arn(&imported)
        .send()
        .await
        .unwrap()
        .certificate
        .unwrap();
    assert_eq!(c.status(), Some(&CertificateStatus::Issued));
    assert_eq!(c.domain_name(), Some(name.as_str()));
    assert_eq!(c.subject_alternative_names(), std::slice::from_ref(&name));

    // Requested: PENDING_VALIDATION, its record appears after a moment.
    let zone_name = format!("{}.example", unique("papi-pub"));
    let wanted = format!("api.{zone_name}");
    let requested = aws
        .acm
        .request_certificate()
        .domain_name(&wanted)
        .validation_method(ValidationMethod::Dns)
        .send()
        .await
        .unwrap()
        .certificate_arn
        .unwrap();
    let record = poll::until_async(
        "validation record",
        Duration::from_secs(20),
        POLL,
        async || {
            let c = aws
                .acm
                .describe_certificate()
                .certificate_arn(&requested)
                .send()
                .await
                .unwrap()
                .certificate
                .unwrap();
            assert_eq!(c.status(), Some(&CertificateStatus::PendingValidation));
            assert!(c.issued_at().is_none(), "no IssuedAt while pending");
            c.domain_validation_options()
                .first()
                .and_then(|o| o.resource_record().cloned())
        },
    )
    .await;
    // Another certificate has another record (moto: one constant for all).
    let other = aws
        .acm
        .request_certificate()
        .domain_name(&wanted)
        .validation_method(ValidationMethod::Dns)
        .send()
        .await
        .unwrap()
        .certificate_arn
        .unwrap();
    let other_record = poll::until_async(
        "other validation record",
        Duration::from_secs(20),
        POLL,
        async || {
            aws.acm
                .describe_certificate()
                .certificate_arn(&other)
                .send()
                .await
                .unwrap()
                .certificate
                .unwrap()
                .domain_validation_options()
                .first()
                .and_then(|o| o.resource_record().cloned())
        },
    )
    .await;
    assert_ne!(record.name(), other_record.name());
    // The record in a *private* zone validates nothing; in the public zone it does.
    let vpc = crate::support::make_vpc(&aws.ec2, 184).await;
    for private_zone in [true, false] {
        let mut create = aws
            .route53
            .create_hosted_zone()
            .name(&zone_name)
            .caller_reference(unique("papi-cr"));
        if private_zone {
            create = create.vpc(
                Vpc::builder()
                    .vpc_id(&vpc.vpc_id)
                    .vpc_region(VpcRegion::UsEast1)
                    .build(),
            );
        }
        let zone = create.send().await.unwrap().hosted_zone.unwrap().id;
        upsert(
            &aws,
            &zone,
            ResourceRecordSet::builder()
                .name(record.name())
                .r#type(RrType::Cname)
                .ttl(300)
                .resource_records(
                    ResourceRecord::builder()
                        .value(record.value())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .await;
        if private_zone {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let c = aws
                .acm
                .describe_certificate()
                .certificate_arn(&requested)
                .send()
                .await
                .unwrap()
                .certificate
                .unwrap();
            assert_eq!(
                c.status(),
                Some(&CertificateStatus::PendingValidation),
                "a private zone does not validate"
            );
        }
    }
    poll::until_async(
        "ISSUED once the record is in the public zone",
        Duration::from_secs(20),
        POLL,
        async || {
            let c = aws
                .acm
                .describe_certificate()
                .certificate_arn(&requested)
                .send()
                .await
                .unwrap()
                .certificate
                .unwrap();
            (c.status() == Some(&CertificateStatus::Issued) && c.issued_at().is_some())
                .then_some(())
        },
    )
    .await;
    let c = aws
        .acm
        .describe_certificate()
        .certificate_arn(&other)
        .send()
        .await
        .unwrap()
        .certificate
        .unwrap();
    assert_eq!(
        c.status(),
        Some(&CertificateStatus::PendingValidation),
        "the other certificate's record is not there"
    );
}

async fn upsert(aws: &Aws, zone: &str, set: ResourceRecordSet) {
    change(aws, zone, ChangeAction::Upsert, set)
        .await
        .expect("UPSERT");
}

async fn change(
    aws: &Aws,
    zone: &str,
    action: ChangeAction,
    set: ResourceRecordSet,
) -> Result<
    aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsOutput,
    aws_sdk_route53::error::SdkError<
        aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
> {
    aws.route53
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(action)
                        .resource_record_set(set)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
}

fn alias_a(name: &str, target: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .dns_name(target)
                .hosted_zone_id("Z7HUB22UULQXV")
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn cname(name: &str, value: &str, ttl: i64) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::Cname)
        .ttl(ttl)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap()
}

/// The record sets of `zone` other than NS and SOA: (name, type, alias target or values).
async fn records(aws: &Aws, zone: &str) -> Vec<(String, String, String)> {
    aws.route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap()
        .resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type(), RrType::Ns | RrType::Soa))
        .map(|r| {
            let what = match r.alias_target() {
                Some(a) => a.dns_name().to_string(),
                None => r
                    .resource_records()
                    .iter()
                    .map(|v| v.value().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            (r.name().to_string(), r.r#type().as_str().to_string(), what)
        })
        .collect()
}

/// D6: ChangeResourceRecordSets as AWS validates it.
#[tokio::test]
async fn route53_change_batch_as_aws() {
    let aws = aws().await;
    let zone_name = format!("{}.papi.internal", unique("papi-zone"));
    let zone = aws
        .route53
        .create_hosted_zone()
        .name(&zone_name)
        .caller_reference(unique("papi-cr"))
        .send()
        .await
        .unwrap()
        .hosted_zone
        .unwrap()
        .id;
    let api = format!("api.{zone_name}");
    let www = format!("www.{zone_name}");
    let target = "vpce-0123456789abcdef0-abcdefgh.execute-api.us-east-1.vpce.amazonaws.com";
    // UPSERT twice: one record.
    upsert(&aws, &zone, alias_a(&api, target)).await;
    upsert(&aws, &zone, alias_a(&api, target)).await;
    upsert(&aws, &zone, cname(&www, &api, 300)).await;
    assert_eq!(
        records(&aws, &zone).await,
        vec![
            (format!("{api}."), "A".into(), target.to_string()),
            (format!("{www}."), "CNAME".into(), api.clone()),
        ]
    );
    let code = |r: Result<_, _>| {
        let (code, status, msg) = failure(r);
        (code, status, msg)
    };
    let (c, s, m) = code(change(&aws, &zone, ChangeAction::Create, alias_a(&api, target)).await);
    assert_eq!(
        (c.as_str(), s),
        ("InvalidChangeBatch", 400),
        "CREATE existing: {m}"
    );
    assert!(m.contains("already exists"), "{m}");
    let (c, s, m) = code(
        change(
            &aws,
            &zone,
            ChangeAction::Delete,
            alias_a(&api, "other.example.com"),
        )
        .await,
    );
    assert_eq!(
        (c.as_str(), s),
        ("InvalidChangeBatch", 400),
        "DELETE alias mismatch: {m}"
    );
    assert!(m.contains("do not match"), "{m}");
    let (c, _, m) = code(
        change(
            &aws,
            &zone,
            ChangeAction::Delete,
            cname(&www, "x.example.com", 300),
        )
        .await,
    );
    assert_eq!(c, "InvalidChangeBatch", "DELETE value mismatch: {m}");
    let (c, _, m) = code(change(&aws, &zone, ChangeAction::Delete, cname(&www, &api, 60)).await);
    assert_eq!(c, "InvalidChangeBatch", "DELETE TTL mismatch: {m}");
    let (c, _, m) = code(
        change(
            &aws,
            &zone,
            ChangeAction::Upsert,
            cname(&api, "x.example.com", 60),
        )
        .await,
    );
    assert_eq!(c, "InvalidChangeBatch", "CNAME beside an A record: {m}");
    assert_eq!(records(&aws, &zone).await.len(), 2, "nothing changed");
    // DELETE with the exact values (name in other case, with the final dot) works once.
    let upper = format!("{}.", api.to_uppercase());
    change(&aws, &zone, ChangeAction::Delete, alias_a(&upper, target))
        .await
        .expect("DELETE of the alias");
    change(&aws, &zone, ChangeAction::Delete, cname(&www, &api, 300))
        .await
        .expect("DELETE of the CNAME");
    let (c, _, m) = code(change(&aws, &zone, ChangeAction::Delete, cname(&www, &api, 300)).await);
    assert_eq!(c, "InvalidChangeBatch", "DELETE of what is gone: {m}");
    assert!(m.contains("not found"), "{m}");
    assert!(records(&aws, &zone).await.is_empty());
    aws.route53
        .delete_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap();
}

/// D7: CreateHostedZone's CallerReference is used once; a VPC makes the zone private and must
/// exist.
#[tokio::test]
async fn route53_caller_reference_is_used_once() {
    let aws = aws().await;
    let vpc = crate::support::make_vpc(&aws.ec2, 185).await;
    let zone_name = format!("{}.papi.internal", unique("papi-pz"));
    let reference = unique("papi-cr");
    let create = || {
        aws.route53
            .create_hosted_zone()
            .name(&zone_name)
            .caller_reference(&reference)
            .vpc(
                Vpc::builder()
                    .vpc_id(&vpc.vpc_id)
                    .vpc_region(VpcRegion::UsEast1)
                    .build(),
            )
            .send()
    };
    let zone = create().await.unwrap().hosted_zone.unwrap().id;
    let (code, status, _) = failure(create().await);
    assert_eq!((code.as_str(), status), ("HostedZoneAlreadyExists", 409));
    let got = aws
        .route53
        .get_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.hosted_zone()
            .and_then(|z| z.config())
            .map(|c| c.private_zone()),
        Some(true),
        "a zone made with a VPC is private"
    );
    assert_eq!(
        got.vpcs()
            .iter()
            .map(|v| v.vpc_id().unwrap_or_default().to_string())
            .collect::<Vec<_>>(),
        vec![vpc.vpc_id.clone()]
    );
    let (code, _, _) = failure(
        aws.route53
            .create_hosted_zone()
            .name(&zone_name)
            .caller_reference(unique("papi-cr"))
            .vpc(
                Vpc::builder()
                    .vpc_id("vpc-0123456789abcdef0")
                    .vpc_region(VpcRegion::UsEast1)
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(code, "InvalidVPCId");
    aws.route53
        .delete_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// every call the operator makes for a domain, in its order
// ---------------------------------------------------------------------------------------------

/// ImportCertificate/DescribeCertificate, CreateHostedZone (private, VPC)/GetHostedZone,
/// CreateDomainName, CreateDomainNameAccessAssociation, CreateBasePathMapping,
/// ChangeResourceRecordSets (UPSERT alias A to the endpoint)/ListResourceRecordSets,
/// GetDomainName, GetDomainNames, GetDomainNameAccessAssociations, GetBasePathMappings,
/// GetBasePathMapping, GetTags/TagResource/UntagResource, UpdateDomainName (/policy,
/// /certificateArn), UpdateBasePathMapping, DeleteBasePathMapping,
/// DeleteDomainNameAccessAssociation, DeleteDomainName, ChangeResourceRecordSets DELETE.
#[tokio::test]
async fn domain_operator_calls_work() {
    let aws = aws().await;
    let name = domain("papi-dn-op");
    let (vpc_id, vpce) = endpoint(&aws, 186).await;
    let endpoint_dns = aws
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(&vpce)
        .send()
        .await
        .unwrap()
        .vpc_endpoints()[0]
        .dns_entries()[0]
        .clone();

    // Certificate.
    let cert = imported_certificate(&aws, &name).await;
    let c = aws
        .acm
        .describe_certificate()
        .certificate_arn(&cert)
        .send()
        .await
        .unwrap()
        .certificate
        .unwrap();
    assert_eq!(c.status(), Some(&CertificateStatus::Issued));
    assert!(c.subject_alternative_names().contains(&name));

    // Private hosted zone for the name, in the endpoint's VPC.
    let zone = aws
        .route53
        .create_hosted_zone()
        .name(&name)
        .caller_reference(unique("papi-cr"))
        .vpc(
            Vpc::builder()
                .vpc_id(&vpc_id)
                .vpc_region(VpcRegion::UsEast1)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .hosted_zone
        .unwrap()
        .id;
    let z = aws
        .route53
        .get_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap();
    assert_eq!(
        z.hosted_zone()
            .and_then(|z| z.config())
            .map(|c| c.private_zone()),
        Some(true)
    );

    // Domain name, association, mapping.
    let created = create_private_domain(&aws, &name, &cert, &domain_policy(&[&vpce])).await;
    let (id, arn) = (
        created.domain_name_id().unwrap().to_string(),
        created.domain_name_arn().unwrap().to_string(),
    );
    let assoc = aws
        .apigw
        .create_domain_name_access_association()
        .domain_name_arn(&arn)
        .access_association_source_type(AccessAssociationSourceType::Vpce)
        .access_association_source(&vpce)
        .tags("privateapi.io/uid", &name)
        .send()
        .await
        .unwrap()
        .domain_name_access_association_arn
        .unwrap();
    let api = private_api_with_stage(&aws, "v1").await;
    aws.apigw
        .create_stage()
        .rest_api_id(&api)
        .stage_name("v2")
        .deployment_id(
            aws.apigw
                .get_deployments()
                .rest_api_id(&api)
                .send()
                .await
                .unwrap()
                .items()[0]
                .id()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    aws.apigw
        .create_base_path_mapping()
        .domain_name(&name)
        .domain_name_id(&id)
        .rest_api_id(&api)
        .stage("v1")
        .base_path("orders")
        .send()
        .await
        .unwrap();

    // DNS: alias A record to the endpoint.
    let record = ResourceRecordSet::builder()
        .name(&name)
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .dns_name(endpoint_dns.dns_name().unwrap())
                .hosted_zone_id(endpoint_dns.hosted_zone_id().unwrap())
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    upsert(&aws, &zone, record.clone()).await;
    upsert(&aws, &zone, record.clone()).await;
    assert_eq!(
        records(&aws, &zone).await,
        vec![(
            format!("{name}."),
            "A".to_string(),
            endpoint_dns.dns_name().unwrap().to_string()
        )]
    );

    // Reads.
    let got = aws
        .apigw
        .get_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.domain_name_arn(), Some(arn.as_str()));
    let mut listed = false;
    let mut pages = aws
        .apigw
        .get_domain_names()
        .resource_owner(ResourceOwner::SelfValue)
        .limit(500)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        listed |= page
            .unwrap()
            .items()
            .iter()
            .any(|d| d.domain_name_id() == Some(id.as_str()));
    }
    assert!(listed, "GetDomainNames lists it");
    let assocs = aws
        .apigw
        .get_domain_name_access_associations()
        .resource_owner(ResourceOwner::SelfValue)
        .send()
        .await
        .unwrap();
    assert!(
        assocs
            .items()
            .iter()
            .any(|a| a.domain_name_access_association_arn() == Some(assoc.as_str()))
    );
    let mappings = aws
        .apigw
        .get_base_path_mappings()
        .domain_name(&name)
        .domain_name_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        mappings
            .items()
            .iter()
            .map(|m| m.base_path().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec!["orders"]
    );
    let one = aws
        .apigw
        .get_base_path_mapping()
        .domain_name(&name)
        .domain_name_id(&id)
        .base_path("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(one.stage(), Some("v1"));
    aws.apigw
        .tag_resource()
        .resource_arn(&arn)
        .tags("privateapi.io/owner", "team-a/orders")
        .send()
        .await
        .unwrap();
    let tags = aws
        .apigw
        .get_tags()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().and_then(|t| t.get("privateapi.io/uid")),
        Some(&name)
    );
    aws.apigw
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("privateapi.io/owner")
        .send()
        .await
        .unwrap();

    // Updates: the policy (a second endpoint), the certificate, the mapping's stage.
    let policy2 = domain_policy(&[&vpce, "vpce-0fedcba9876543210"]);
    let cert2 = imported_certificate(&aws, &name).await;
    let updated = aws
        .apigw
        .update_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/policy")
                .value(&policy2)
                .build(),
        )
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/certificateArn")
                .value(&cert2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(updated.certificate_arn(), Some(cert2.as_str()));
    let sources =
        parsed(updated.policy())["Statement"][0]["Condition"]["StringNotEquals"]["aws:SourceVpce"]
            .clone();
    assert_eq!(sources, serde_json::json!([vpce, "vpce-0fedcba9876543210"]));
    let m = aws
        .apigw
        .update_base_path_mapping()
        .domain_name(&name)
        .domain_name_id(&id)
        .base_path("orders")
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/stage")
                .value("v2")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(m.stage(), Some("v2"));

    // Tear down in the operator's order.
    aws.apigw
        .delete_base_path_mapping()
        .domain_name(&name)
        .domain_name_id(&id)
        .base_path("orders")
        .send()
        .await
        .unwrap();
    aws.apigw
        .delete_domain_name_access_association()
        .domain_name_access_association_arn(&assoc)
        .send()
        .await
        .unwrap();
    aws.apigw
        .delete_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .send()
        .await
        .unwrap();
    change(&aws, &zone, ChangeAction::Delete, record)
        .await
        .expect("DELETE of the alias record");
    assert!(records(&aws, &zone).await.is_empty());
    aws.route53
        .delete_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap();
    let (code, status, _) = failure(
        aws.apigw
            .get_domain_name()
            .domain_name(&name)
            .domain_name_id(&id)
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("NotFoundException", 404));
}
