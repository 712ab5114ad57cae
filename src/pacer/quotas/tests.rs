use std::sync::Arc;

use super::*;
use crate::metrics::Metrics;
use crate::pacer::tests::pacer;
use crate::pacer::{Pacer, PacerConfig};

#[test]
fn table_has_the_issue_figures() {
    let p = pacer(1.0, 1.0);
    assert_eq!(p.quota("API Gateway", None), Some((10.0, 40.0)));
    assert_eq!(
        p.quota("API Gateway", Some("CreateDeployment")),
        Some((0.2, 1.0))
    );
    assert_eq!(
        p.quota("API Gateway", Some("DeleteRestApi")),
        Some((1.0 / 30.0, 1.0))
    );
    assert_eq!(p.quota("Lambda", None), Some((15.0, 15.0)));
    assert_eq!(p.quota("Lambda", Some("GetFunction")), Some((100.0, 100.0)));
    // An operation without its own API Gateway quota only takes from the total.
    assert_eq!(p.quota("API Gateway", Some("GetStages")), None);
    // EC2: every API has a bucket; unknown ones get the mutating category's.
    assert_eq!(
        p.quota("EC2", Some("DescribeVpcEndpoints")),
        Some((20.0, 100.0))
    );
    assert_eq!(p.quota("EC2", Some("SomethingNew")), Some((5.0, 50.0)));
    assert_eq!(p.quota("EC2", None), None);
    assert!(
        published_quotas()
            .iter()
            .all(|q| q.source.starts_with("https://docs.aws.amazon.com/"))
    );
}

#[test]
fn overrides_parse() {
    let q = parse_override("API Gateway:CreateDeployment=1/5s").expect("parses");
    assert_eq!(q.operation.as_deref(), Some("CreateDeployment"));
    assert!((q.rate_per_s - 0.2).abs() < 1e-9 && q.burst == 1.0);
    let q = parse_override("Lambda=10/20").expect("parses");
    assert_eq!((q.operation, q.rate_per_s, q.burst), (None, 10.0, 20.0));
    let q = parse_override("EC2:CreateTags=2.5").expect("parses");
    assert_eq!((q.rate_per_s, q.burst), (2.5, 2.5));
    assert!(parse_override("S3=1").is_err());
    assert!(parse_override("Lambda=0").is_err());
    assert!(parse_override("Lambda").is_err());
    let p = Pacer::new(
        PacerConfig {
            overrides: vec![parse_override("API Gateway:CreateDeployment=1/2s").expect("ok")],
            ..PacerConfig::default()
        },
        Arc::new(Metrics::default()),
    );
    assert_eq!(
        p.quota("API Gateway", Some("CreateDeployment")),
        Some((0.5, 1.0))
    );
}
