use super::*;
use crate::parts::endpoint::fixtures::spec;

fn https(source: Source) -> Rule {
    Rule::https(source)
}

fn cidr(c: &str) -> Source {
    Source::Cidr(c.into())
}

#[test]
fn desired_ingress_is_https_from_each_allowed_source() {
    let rules = desired_ingress(&spec());
    assert_eq!(
        rules,
        BTreeSet::from([
            https(cidr("10.0.0.0/16")),
            https(Source::Ipv6Cidr("2001:db8::/48".into())),
            https(Source::Group("sg-client".into())),
        ])
    );
    let mut empty = spec();
    empty.allowed_cidrs.clear();
    empty.allowed_security_group_ids.clear();
    assert!(desired_ingress(&empty).is_empty());
}

#[test]
fn one_permission_with_several_sources_equals_several_permissions() {
    let one = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(443)
        .to_port(443)
        .ip_ranges(
            IpRange::builder()
                .cidr_ip("10.0.0.0/16")
                .description("x")
                .build(),
        )
        .ip_ranges(IpRange::builder().cidr_ip("10.1.0.0/16").build())
        .user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id("sg-1")
                .user_id("123")
                .build(),
        )
        .build();
    let several = vec![
        IpPermission::builder()
            .ip_protocol("6")
            .from_port(443)
            .to_port(443)
            .ip_ranges(IpRange::builder().cidr_ip("10.1.0.0/16").build())
            .build(),
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(443)
            .to_port(443)
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-1").build())
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
            .build(),
    ];
    assert_eq!(rules_of(&[one]), rules_of(&several));
    assert_eq!(rules_of(&several).len(), 3);
}

#[test]
fn all_traffic_rules_ignore_ports() {
    let perm = IpPermission::builder()
        .ip_protocol("-1")
        .from_port(-1)
        .to_port(-1)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build();
    let rules = rules_of(&[perm]);
    let rule = rules.iter().next().expect("one rule");
    assert_eq!((rule.from_port, rule.to_port), (None, None));
    assert_eq!(rule.to_string(), "all 0.0.0.0/0");
}

#[test]
fn rule_diff_adds_only_missing_and_removes_only_extra() {
    let desired = BTreeSet::from([
        https(cidr("10.0.0.0/16")),
        https(Source::Group("sg-1".into())),
    ]);
    let ssh = Rule {
        protocol: "tcp".into(),
        from_port: Some(22),
        to_port: Some(22),
        source: cidr("0.0.0.0/0"),
    };
    let live = BTreeSet::from([
        https(Source::Group("sg-1".into())),
        ssh.clone(),
        https(cidr("1.2.3.4/32")),
    ]);
    let diff = diff_rules(&live, &desired);
    assert_eq!(diff.add, vec![https(cidr("10.0.0.0/16"))]);
    // Sorted (protocol, ports, source), whatever order AWS listed them in.
    assert_eq!(diff.remove, vec![ssh, https(cidr("1.2.3.4/32"))]);
    assert_eq!(
        diff.describe("ingress"),
        "ingress: +tcp/443 10.0.0.0/16, -tcp/22 0.0.0.0/0, -tcp/443 1.2.3.4/32"
    );
    assert!(diff_rules(&desired, &desired).is_empty());
}

#[test]
fn permissions_group_sources_per_port_range_and_round_trip() {
    let rules = vec![
        https(cidr("10.0.0.0/16")),
        https(Source::Group("sg-1".into())),
        https(Source::Ipv6Cidr("::/0".into())),
        Rule {
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            source: Source::PrefixList("pl-1".into()),
        },
    ];
    let perms = permissions(&rules, Some("why"));
    assert_eq!(perms.len(), 2, "{perms:?}");
    let tcp = perms
        .iter()
        .find(|p| p.ip_protocol() == Some("tcp"))
        .expect("tcp permission");
    assert_eq!(tcp.ip_ranges()[0].description(), Some("why"));
    assert_eq!(rules_of(&perms), rules.into_iter().collect());
}

#[test]
fn group_description_fits_ec2_limits() {
    assert_eq!(
        group_description("team-a", "orders"),
        "privateapi-operator: HTTPS to the execute-api endpoint of team-a/orders"
    );
    assert_eq!(
        group_description(&"n".repeat(63), &"x".repeat(253)).len(),
        255
    );
}

#[test]
fn the_rule_plan_is_the_desired_ingress_and_no_egress() {
    let allow_all = Rule {
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        source: cidr("0.0.0.0/0"),
    };
    // What EC2 gives a new group: no ingress, all egress.
    let new_group = LiveGroup {
        id: "sg-managed".into(),
        egress: BTreeSet::from([allow_all.clone()]),
        ..Default::default()
    };
    let desired = desired_ingress(&spec());
    let plan = plan_rules(&new_group, &desired);
    assert_eq!(
        plan.ingress.add,
        desired.iter().cloned().collect::<Vec<_>>()
    );
    assert!(plan.ingress.remove.is_empty());
    assert!(plan.admits_new_groups());
    assert_eq!(
        plan.egress,
        RuleDiff {
            add: Vec::new(),
            remove: vec![allow_all],
        }
    );
    assert_eq!(plan.egress.describe("egress"), "egress: -all 0.0.0.0/0");

    let in_sync = LiveGroup {
        ingress: desired.clone(),
        egress: BTreeSet::new(),
        ..new_group
    };
    assert_eq!(plan_rules(&in_sync, &desired), RulePlan::default());

    let cidr_only = BTreeSet::from([https(cidr("10.0.0.0/16"))]);
    assert!(!plan_rules(&LiveGroup::default(), &cidr_only).admits_new_groups());
}
