//! `spec.domain`: a private custom domain name through the real API server and the fake (its
//! domain names, access associations, mappings, ACM and Route 53 as corrected in
//! `testbed/moto/domains.py`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const READY_WITHIN: Duration = Duration::from_secs(120);

/// The domain name's associations (their endpoints) and mappings (base path → api/stage).
async fn associations_and_mappings(
    world: &World,
    name: &str,
    id: &str,
    arn: &str,
) -> (BTreeSet<String>, Vec<(String, String, String)>) {
    (
        inspect::domain_association_sources(&world.aws, arn).await,
        inspect::domain_mappings(&world.aws, name, id).await,
    )
}

async fn domain_exists(world: &World, name: &str, id: &str) -> bool {
    world
        .aws
        .apigateway
        .get_domain_name()
        .domain_name(name)
        .domain_name_id(id)
        .send()
        .await
        .is_ok()
}

async fn cname(world: &World, zone: &str, name: &str) -> Option<String> {
    inspect::records_named(&world.aws, zone, name)
        .await
        .into_iter()
        .find(|(type_, _)| type_ == "CNAME")
        .map(|(_, value)| value)
}

fn domain_status(object: &Value) -> (String, String, String) {
    let d = &object["status"]["domain"];
    let field = |f: &str| {
        d[f].as_str()
            .unwrap_or_else(|| panic!("status.domain.{f}: {d}"))
            .to_string()
    };
    (field("name"), field("domainNameId"), field("domainNameArn"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_domain_name_serves_the_stage_and_goes_when_the_spec_drops_it() {
    let world = World::new("domain").vpc(130).operator().await;
    let vpc = world.vpc();
    let zone_name = format!("{}.internal.example.com", unique("z"));
    let name = format!("orders.{zone_name}");
    let certificate = make::imported_certificate(&world.aws.acm, &format!("*.{zone_name}")).await;
    let zone = make::hosted_zone(&world.aws.route53, &zone_name, Some(&vpc.vpc_id)).await;

    world
        .seed("orders")
        .domain(&name, &certificate, Some(&zone))
        .apply();
    let object = world.wait_ready("orders", READY_WITHIN);
    let c = condition(&object, "DomainReady").expect("DomainReady");
    assert_eq!(c["status"], "True", "{c}");
    let (status_name, id, arn) = domain_status(&object);
    assert_eq!(status_name, name);
    assert_eq!(
        object["status"]["urls"]["customDomain"].as_str(),
        Some(format!("https://{name}/").as_str())
    );

    // In AWS: the domain name, its endpoint's association, the mapping to the stage, the record.
    let vpce = status_str(&object, "vpcEndpointId");
    let api = status_str(&object, "restApiId");
    let (associations, mappings) = associations_and_mappings(&world, &name, &id, &arn).await;
    assert_eq!(associations, BTreeSet::from([vpce.clone()]));
    assert_eq!(
        mappings,
        vec![("(none)".to_string(), api.clone(), "prod".to_string())]
    );
    let domain = world
        .aws
        .apigateway
        .get_domain_name()
        .domain_name(&name)
        .domain_name_id(&id)
        .send()
        .await
        .expect("GetDomainName");
    assert_eq!(domain.certificate_arn(), Some(certificate.as_str()));
    assert!(
        domain.policy().unwrap_or_default().contains(&vpce),
        "the domain's policy admits the endpoint: {:?}",
        domain.policy()
    );
    let target = cname(&world, &zone, &name).await.expect("the CNAME");
    assert!(target.trim_end_matches('.').starts_with(&vpce), "{target}");

    // Steady state: nothing to write.
    let steady = world
        .operator()
        .calls_during("steady state with a domain", || world.poke("orders"));
    assert_eq!(steady.writes, 0, "{:?}", steady.by_operation);

    // Another endpoint may invoke the API: it gets an association too.
    let extra = make::execute_api_endpoint(&world.aws, vpc).await;
    world.patch("orders", json!({"additionalVpcEndpointIds": [extra]}));
    world.wait_ready("orders", READY_WITHIN);
    let (associations, _) = associations_and_mappings(&world, &name, &id, &arn).await;
    assert_eq!(associations, BTreeSet::from([vpce.clone(), extra.clone()]));

    // The domain taken out of the spec: the record (in the zone status recorded), the mapping,
    // the associations and the domain name go; the API stays.
    world.patch("orders", json!({"domain": null}));
    let object = world.wait_for("orders", READY_WITHIN, "Ready without a domain", |o| {
        is_ready(o) && o["status"]["domain"].is_null()
    });
    assert!(condition(&object, "DomainReady").is_none());
    assert!(object["status"]["urls"]["customDomain"].is_null());
    assert!(!domain_exists(&world, &name, &id).await);
    let (associations, mappings) = associations_and_mappings(&world, &name, &id, &arn).await;
    assert!(associations.is_empty() && mappings.is_empty());
    assert_eq!(cname(&world, &zone, &name).await, None);
    world.delete_and_wait("orders", READY_WITHIN);
    inspect::delete_endpoint(&world.aws, &extra).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_waits_for_its_certificate_and_refuses_a_public_zone_or_an_uncovered_name() {
    let world = World::new("domain-refs").vpc(131).operator().await;
    let zone_name = format!("{}.internal.example.com", unique("z"));
    // Requested, not validated: PENDING_VALIDATION until its DNS record is published.
    let pending = world
        .aws
        .acm
        .request_certificate()
        .domain_name(format!("*.{zone_name}"))
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .send()
        .await
        .expect("RequestCertificate")
        .certificate_arn
        .expect("ARN");
    world
        .seed("waiting")
        .private_dns(false)
        .domain(&format!("orders.{zone_name}"), &pending, None)
        .apply();
    let object = world.wait_for(
        "waiting",
        READY_WITHIN,
        "DomainReady ReferenceNotReady on the certificate",
        |o| {
            condition(o, "DomainReady").is_some_and(|c| {
                c["reason"] == "ReferenceNotReady"
                    && c["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("PENDING_VALIDATION")
            })
        },
    );
    assert_eq!(
        condition(&object, "Ready").map(|c| c["status"].clone()),
        Some(json!("False"))
    );

    // A public zone, and a certificate that does not cover the name: InvalidSpec naming the field.
    let certificate = make::imported_certificate(&world.aws.acm, &format!("*.{zone_name}")).await;
    let public = make::hosted_zone(&world.aws.route53, &zone_name, None).await;
    world
        .seed("public")
        .private_dns(false)
        .domain(&format!("orders.{zone_name}"), &certificate, Some(&public))
        .apply();
    world
        .seed("uncovered")
        .private_dns(false)
        .domain("orders.elsewhere.example.com", &certificate, None)
        .apply();
    for (name, field) in [
        ("public", "spec.domain.hostedZoneId"),
        ("uncovered", "spec.domain.certificateArn"),
    ] {
        world.wait_for(
            name,
            READY_WITHIN,
            &format!("InvalidSpec naming {field}"),
            |o| {
                condition(o, "Ready").is_some_and(|c| {
                    c["reason"] == "InvalidSpec"
                        && c["message"].as_str().unwrap_or_default().contains(field)
                })
            },
        );
    }
    for name in ["waiting", "public", "uncovered"] {
        world.delete_and_wait(name, READY_WITHIN);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_domain_serves_its_new_name_before_the_old_one_goes() {
    let world = World::new("domain-rename").vpc(132).operator().await;
    let zone_name = format!("{}.internal.example.com", unique("z"));
    let certificate = make::imported_certificate(&world.aws.acm, &format!("*.{zone_name}")).await;
    let zone = make::hosted_zone(&world.aws.route53, &zone_name, Some(&world.vpc().vpc_id)).await;
    let (old, new) = (format!("orders.{zone_name}"), format!("shop.{zone_name}"));
    world
        .seed("orders")
        .domain(&old, &certificate, Some(&zone))
        .apply();
    let object = world.wait_ready("orders", READY_WITHIN);
    let (_, old_id, _) = domain_status(&object);
    let api = status_str(&object, "restApiId");

    // Renamed, and served under a base path.
    world.patch(
        "orders",
        json!({"domain": {"name": new, "basePath": "orders"}}),
    );
    let object = world.wait_ready("orders", READY_WITHIN);
    let (name, id, arn) = domain_status(&object);
    assert_eq!(name, new);
    assert_ne!(id, old_id);
    assert_eq!(
        object["status"]["urls"]["customDomain"].as_str(),
        Some(format!("https://{new}/orders/").as_str())
    );
    let (associations, mappings) = associations_and_mappings(&world, &new, &id, &arn).await;
    assert_eq!(
        associations,
        BTreeSet::from([status_str(&object, "vpcEndpointId")])
    );
    assert_eq!(
        mappings,
        vec![("orders".to_string(), api, "prod".to_string())]
    );
    assert!(cname(&world, &zone, &new).await.is_some());
    // The old name is gone, with its record, and went only after the new one was mapped and
    // published (the operator logs each change in the order it made it).
    assert!(!domain_exists(&world, &old, &old_id).await);
    // Without the terminal colours tracing writes around field names.
    let log = strip_colours(&world.operator().log());
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in the operator's log"))
    };
    let old_deleted = at(&format!(
        "action=\"Deleted\" resource=private domain name {old} ({old_id})"
    ));
    assert!(
        at(&format!(
            "resource=base path mapping orders of private domain name {new}"
        )) < old_deleted
    );
    assert!(at(&format!("resource=record {new} in hosted zone")) < old_deleted);
    assert_eq!(cname(&world, &zone, &old).await, None);

    // The stage renamed: the mapping follows.
    world.patch("orders", json!({"stageName": "live"}));
    let object = world.wait_ready("orders", READY_WITHIN);
    let (_, mappings) = associations_and_mappings(&world, &new, &id, &arn).await;
    assert_eq!(
        mappings,
        vec![(
            "orders".to_string(),
            status_str(&object, "restApiId"),
            "live".to_string()
        )]
    );
    world.delete_and_wait("orders", READY_WITHIN);
    assert!(!domain_exists(&world, &new, &id).await);
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
