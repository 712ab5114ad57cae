use super::*;
use crate::parts::endpoint::fixtures::{live_endpoint, spec};

#[test]
fn endpoint_in_sync_needs_nothing() {
    let desired = DesiredEndpoint::new(&spec(), "sg-managed");
    assert!(diff_endpoint(&live_endpoint("vpce-1"), &desired).is_empty());
}

#[test]
fn endpoint_diff_lists_each_difference() {
    let mut spec = spec();
    spec.subnet_ids = vec!["subnet-b".into(), "subnet-c".into()];
    spec.security_group_ids.clear();
    spec.private_dns = false;
    let desired = DesiredEndpoint::new(&spec, "sg-managed");
    let mut live = live_endpoint("vpce-1");
    live.security_group_ids = BTreeSet::from(["sg-extra".to_string(), "sg-default".to_string()]);
    let diff = diff_endpoint(&live, &desired);
    assert_eq!(
        diff,
        EndpointDiff {
            add_subnet_ids: vec!["subnet-c".into()],
            remove_subnet_ids: vec!["subnet-a".into()],
            add_security_group_ids: vec!["sg-managed".into()],
            remove_security_group_ids: vec!["sg-default".into(), "sg-extra".into()],
            private_dns: Some(false),
        }
    );
    assert_eq!(
        diff.describe(),
        "subnets +subnet-c, subnets -subnet-a, security groups +sg-managed, security groups -sg-default sg-extra, private DNS off"
    );
    diff.apply_to(&mut live);
    assert!(diff_endpoint(&live, &desired).is_empty());
}

#[test]
fn modify_is_one_call_unless_a_subnet_replaces_one_in_its_zone() {
    let diff = EndpointDiff {
        add_subnet_ids: vec!["subnet-c".into()],
        remove_subnet_ids: vec!["subnet-a".into()],
        private_dns: Some(true),
        ..Default::default()
    };
    let az = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(s, z)| (s.to_string(), z.to_string()))
            .collect()
    };
    let other_zone = az(&[("subnet-a", "us-east-1a"), ("subnet-c", "us-east-1c")]);
    assert_eq!(modify_calls(&diff, &other_zone), vec![diff.clone()]);
    let same_zone = az(&[("subnet-a", "us-east-1a"), ("subnet-c", "us-east-1a")]);
    let calls = modify_calls(&diff, &same_zone);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].remove_subnet_ids, vec!["subnet-a".to_string()]);
    assert!(calls[0].add_subnet_ids.is_empty());
    assert_eq!(calls[0].private_dns, Some(true));
    assert_eq!(calls[1].add_subnet_ids, vec!["subnet-c".to_string()]);
    assert!(calls[1].remove_subnet_ids.is_empty() && calls[1].private_dns.is_none());
    assert!(modify_calls(&EndpointDiff::default(), &same_zone).is_empty());
}

#[test]
fn create_parameters_are_canonical() {
    let tags = BTreeMap::from([
        ("b".to_string(), "2".to_string()),
        ("a".to_string(), "1".to_string()),
    ]);
    let one = spec();
    let mut reordered = spec();
    reordered.subnet_ids.reverse();
    let p1 = canonical_create_params(
        "us-east-1",
        &one,
        &DesiredEndpoint::new(&one, "sg-m"),
        &tags,
    );
    let p2 = canonical_create_params(
        "us-east-1",
        &reordered,
        &DesiredEndpoint::new(&reordered, "sg-m"),
        &tags,
    );
    assert_eq!(p1, p2);
    assert_eq!(
        p1,
        "service=com.amazonaws.us-east-1.execute-api;vpc=vpc-1;subnets=subnet-a,subnet-b;groups=sg-extra,sg-m;privateDns=true;tags=a=1,b=2"
    );
    let mut no_dns = spec();
    no_dns.private_dns = false;
    assert_ne!(
        p1,
        canonical_create_params(
            "us-east-1",
            &no_dns,
            &DesiredEndpoint::new(&no_dns, "sg-m"),
            &tags
        )
    );
}
