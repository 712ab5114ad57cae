use super::*;
use crate::parts::endpoint::fixtures::spec;

fn facts(pairs: &[(&str, &str, &str)]) -> BTreeMap<String, SubnetFacts> {
    pairs
        .iter()
        .map(|(id, vpc, az)| {
            (
                id.to_string(),
                SubnetFacts {
                    vpc_id: vpc.to_string(),
                    availability_zone: az.to_string(),
                },
            )
        })
        .collect()
}

/// `field: message` of a refusal: ReferenceNotFound when something does not exist (retried),
/// InvalidSpec otherwise.
fn invalid_field(result: Result<()>) -> String {
    match result {
        Err(Error::ReferenceNotFound { field, message }) if message.contains("does not exist") => {
            format!("{field}: {message}")
        }
        Err(Error::InvalidSpec { field, message }) if !message.contains("does not exist") => {
            format!("{field}: {message}")
        }
        other => panic!(
            "expected InvalidSpec (or ReferenceNotFound for what does not exist), got {other:?}"
        ),
    }
}

#[test]
fn subnet_checks_name_the_index() {
    let spec = spec();
    let good = facts(&[
        ("subnet-a", "vpc-1", "us-east-1a"),
        ("subnet-b", "vpc-1", "us-east-1b"),
    ]);
    check_subnets(&spec, &good, "us-east-1").expect("valid");
    let missing = facts(&[("subnet-a", "vpc-1", "us-east-1a")]);
    let msg = invalid_field(check_subnets(&spec, &missing, "us-east-1"));
    assert!(
        msg.starts_with("spec.endpoint.create.subnetIds[1]: subnet subnet-b does not exist"),
        "{msg}"
    );
    let other_vpc = facts(&[
        ("subnet-a", "vpc-2", "us-east-1a"),
        ("subnet-b", "vpc-1", "us-east-1b"),
    ]);
    let msg = invalid_field(check_subnets(&spec, &other_vpc, "us-east-1"));
    assert!(
        msg.starts_with("spec.endpoint.create.subnetIds[0]: subnet subnet-a is in vpc-2"),
        "{msg}"
    );
    let same_az = facts(&[
        ("subnet-a", "vpc-1", "us-east-1a"),
        ("subnet-b", "vpc-1", "us-east-1a"),
    ]);
    let msg = invalid_field(check_subnets(&spec, &same_az, "us-east-1"));
    assert!(msg.starts_with("spec.endpoint.create.subnetIds[1]: subnet subnet-b is in Availability Zone us-east-1a like spec.endpoint.create.subnetIds[0]"), "{msg}");
}

#[test]
fn group_checks_name_the_list_and_index() {
    let spec = spec();
    let all = BTreeMap::from([
        ("sg-client".to_string(), "vpc-9".to_string()),
        ("sg-extra".to_string(), "vpc-1".to_string()),
    ]);
    check_groups(&spec, &all, true, true, "us-east-1")
        .expect("valid: allowed groups may be in another VPC");
    let msg = invalid_field(check_groups(
        &spec,
        &BTreeMap::new(),
        true,
        false,
        "us-east-1",
    ));
    assert!(msg.starts_with("spec.endpoint.create.allowedSecurityGroupIds[0]: security group sg-client does not exist"), "{msg}");
    check_groups(&spec, &BTreeMap::new(), false, false, "us-east-1").expect("nothing asked");
    let foreign = BTreeMap::from([("sg-extra".to_string(), "vpc-9".to_string())]);
    let msg = invalid_field(check_groups(&spec, &foreign, false, true, "us-east-1"));
    assert!(
        msg.starts_with(
            "spec.endpoint.create.securityGroupIds[0]: security group sg-extra is in vpc-9"
        ),
        "{msg}"
    );
}

#[test]
fn aws_rejections_name_the_field() {
    let spec = spec();
    let field = |code: &str, message: &str| rejection_field(code, message, &spec);
    assert_eq!(
        field(
            "InvalidSubnetID.NotFound",
            "The subnet ID 'subnet-b' does not exist"
        )
        .as_deref(),
        Some("spec.endpoint.create.subnetIds[1]")
    );
    assert_eq!(
        field(
            "DuplicateSubnetsInSameZone",
            "Found another VPC endpoint subnet in the availability zone of subnet-a."
        )
        .as_deref(),
        Some("spec.endpoint.create.subnetIds[0]")
    );
    assert_eq!(
        field(
            "InvalidParameter",
            "private-dns-enabled cannot be set because there is already a conflicting DNS domain for execute-api.us-east-1.amazonaws.com in the VPC vpc-1"
        )
        .as_deref(),
        Some("spec.endpoint.create.privateDns")
    );
    assert_eq!(
        field("InvalidParameter", "Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true for vpc-1").as_deref(),
        Some("spec.endpoint.create.privateDns")
    );
    assert_eq!(
        field(
            "InvalidGroup.NotFound",
            "The security group 'sg-client' does not exist"
        )
        .as_deref(),
        Some("spec.endpoint.create.allowedSecurityGroupIds[0]")
    );
    assert_eq!(
        field(
            "InvalidGroup.NotFound",
            "The security group 'sg-extra' does not exist"
        )
        .as_deref(),
        Some("spec.endpoint.create.securityGroupIds[0]")
    );
    assert_eq!(
        field("InvalidVpcID.NotFound", "VpcID vpc-1 does not exist.").as_deref(),
        Some("spec.endpoint.create.vpcId")
    );
    assert_eq!(field("InvalidParameterValue", "something else"), None);
    assert_eq!(field("UnauthorizedOperation", "no"), None);

    let err = rejected(
        Error::Aws {
            service: SERVICE,
            operation: "CreateVpcEndpoint",
            code: "InvalidSubnetID.NotFound".into(),
            message: "The subnet ID 'subnet-a' does not exist".into(),
            kind: AwsErrorKind::NotFound,
        },
        &spec,
    );
    assert_eq!(err.reason(), "ReferenceNotFound");
    assert!(
        err.to_string()
            .starts_with("spec.endpoint.create.subnetIds[0]: InvalidSubnetID.NotFound")
    );
    let throttled = rejected(
        Error::Aws {
            service: SERVICE,
            operation: "CreateVpcEndpoint",
            code: "RequestLimitExceeded".into(),
            message: "slow down subnet-a".into(),
            kind: AwsErrorKind::Throttled,
        },
        &spec,
    );
    assert_eq!(throttled.reason(), "Throttled");
}
