//! Making AWS resources as someone other than the operator does (a user, a CDK stack): no
//! ownership tags unless a test adds them.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification, VpcEndpointType};
use privateapi_operator::aws::RegionClients;

use super::TestVpc;

/// The `execute-api` service of the tests' region.
pub const EXECUTE_API: &str = "com.amazonaws.us-east-1.execute-api";

/// A security group `name` in `vpc_id`.
pub async fn security_group(
    ec2: &aws_sdk_ec2::Client,
    vpc_id: &str,
    name: &str,
    description: &str,
) -> String {
    ec2.create_security_group()
        .group_name(name)
        .description(description)
        .vpc_id(vpc_id)
        .send()
        .await
        .expect("CreateSecurityGroup")
        .group_id
        .expect("group ID")
}

/// An endpoint of `service` in `vpc`, tagged `tags`; an interface endpoint is in all its subnets,
/// without private DNS.
pub async fn endpoint(
    aws: &RegionClients,
    vpc: &TestVpc,
    type_: VpcEndpointType,
    service: &str,
    tags: &[(&str, &str)],
) -> String {
    let mut request = aws
        .ec2
        .create_vpc_endpoint()
        .vpc_endpoint_type(type_.clone())
        .vpc_id(&vpc.vpc_id)
        .service_name(service);
    if type_ == VpcEndpointType::Interface {
        request = request
            .set_subnet_ids(Some(vpc.subnet_ids.clone()))
            .private_dns_enabled(false);
    }
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::VpcEndpoint);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        request = request.tag_specifications(spec.build());
    }
    request
        .send()
        .await
        .expect("CreateVpcEndpoint")
        .vpc_endpoint
        .and_then(|e| e.vpc_endpoint_id)
        .expect("endpoint id")
}

/// An `execute-api` interface endpoint in `vpc` (its subnets, no private DNS), untagged.
pub async fn execute_api_endpoint(aws: &RegionClients, vpc: &TestVpc) -> String {
    endpoint(aws, vpc, VpcEndpointType::Interface, EXECUTE_API, &[]).await
}

/// A function `name` running the operator's built-in handler (`PAPI_HANDLER_ZIP_X86_64`), with
/// the test bed's role and 128 MiB; its ARN.
pub async fn handler_function(aws: &RegionClients, name: &str) -> String {
    let zip_path = std::env::var("PAPI_HANDLER_ZIP_X86_64").expect("PAPI_HANDLER_ZIP_X86_64");
    let zip = std::fs::read(&zip_path).expect("handler zip");
    let role = std::env::var("PAPI_LAMBDA_ROLE_ARN").expect("PAPI_LAMBDA_ROLE_ARN");
    aws.lambda
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .architectures(aws_sdk_lambda::types::Architecture::X8664)
        .memory_size(128)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction")
        .function_arn
        .expect("function ARN")
}

/// The reference stack's routes on REST API `rest_api_id` (root resource `root`), as CDK makes
/// them: `{proxy+}`, and `ANY` with a Lambda proxy integration to `function_arn` on both;
/// `timeout_ms` is the integration timeout (None: API Gateway's 29 s).
pub async fn proxy_routes(
    aws: &RegionClients,
    rest_api_id: &str,
    root: &str,
    function_arn: &str,
    timeout_ms: Option<i32>,
) {
    let proxy = aws
        .apigateway
        .create_resource()
        .rest_api_id(rest_api_id)
        .parent_id(root)
        .path_part("{proxy+}")
        .send()
        .await
        .expect("CreateResource")
        .id
        .expect("resource id");
    let uri = privateapi_operator::parts::routes::integration_uri(&aws.region, function_arn);
    for resource in [root, proxy.as_str()] {
        aws.apigateway
            .put_method()
            .rest_api_id(rest_api_id)
            .resource_id(resource)
            .http_method("ANY")
            .authorization_type("NONE")
            .send()
            .await
            .expect("PutMethod");
        aws.apigateway
            .put_integration()
            .rest_api_id(rest_api_id)
            .resource_id(resource)
            .http_method("ANY")
            .r#type(aws_sdk_apigateway::types::IntegrationType::AwsProxy)
            .integration_http_method("POST")
            .uri(&uri)
            .set_timeout_in_millis(timeout_ms)
            .send()
            .await
            .expect("PutIntegration");
    }
}

/// Remove every statement of `function`'s resource policy, as someone editing it behind the
/// operator's back does (drift: API Gateway may no longer invoke it).
pub async fn remove_invoke_permissions(aws: &RegionClients, function: &str) {
    for statement in super::inspect::lambda_statements(aws, function).await {
        let sid = statement["Sid"].as_str().expect("Sid");
        aws.lambda
            .remove_permission()
            .function_name(function)
            .statement_id(sid)
            .send()
            .await
            .expect("RemovePermission");
    }
}

/// A security group in `vpc` admitting HTTPS (tcp/443) from the members of `from_group`, as a
/// user makes one for an execute-api endpoint.
pub async fn https_group(aws: &RegionClients, vpc: &TestVpc, from_group: &str) -> String {
    use aws_sdk_ec2::types::{IpPermission, UserIdGroupPair};
    let group = security_group(
        &aws.ec2,
        &vpc.vpc_id,
        &super::unique("endpoint"),
        "execute-api endpoint",
    )
    .await;
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(from_group).build())
                .build(),
        )
        .send()
        .await
        .expect("AuthorizeSecurityGroupIngress");
    group
}

/// Run a boto3 script against the test bed's moto server: for the IAM and S3 calls a GitOps
/// sync would make, which the operator never makes (so their SDK crates are no dependencies).
pub fn boto3(script: &str) {
    let program = format!(
        "import boto3, json, os\nurl = os.environ['AWS_ENDPOINT_URL']\n\
         iam = boto3.client('iam', endpoint_url=url, region_name='us-east-1')\n\
         s3 = boto3.client('s3', endpoint_url=url, region_name='us-east-1')\n{script}\n"
    );
    let out = std::process::Command::new(super::testbed_python())
        .arg("-c")
        .arg(&program)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An `execute-api` interface endpoint in `subnets` of `vpc_id` with the security group `group`,
/// private DNS on or off, untagged: one a user (or a CDK stack) made.
pub async fn execute_api_endpoint_in(
    aws: &RegionClients,
    vpc_id: &str,
    subnets: &[String],
    group: &str,
    private_dns: bool,
) -> String {
    aws.ec2
        .create_vpc_endpoint()
        .vpc_endpoint_type(VpcEndpointType::Interface)
        .vpc_id(vpc_id)
        .service_name(EXECUTE_API)
        .set_subnet_ids(Some(subnets.to_vec()))
        .security_group_ids(group)
        .private_dns_enabled(private_dns)
        .send()
        .await
        .expect("CreateVpcEndpoint")
        .vpc_endpoint
        .and_then(|e| e.vpc_endpoint_id)
        .expect("endpoint id")
}

/// A self-signed RSA-2048 certificate for `name` (CN and SAN) and its key, PEM, made by the
/// test bed's Python (the moto venv has `cryptography`), as the test bed imports them.
pub fn self_signed(name: &str) -> (Vec<u8>, Vec<u8>) {
    let script = r#"
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
name = sys.argv[1]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256()))
sys.stdout.write(cert.public_bytes(serialization.Encoding.PEM).decode())
sys.stdout.write("\n--KEY--\n")
sys.stdout.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode())
"#;
    let out = std::process::Command::new(super::testbed_python())
        .args(["-c", script, name])
        .output()
        .expect("the test bed's python runs");
    assert!(
        out.status.success(),
        "certificate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("PEM is ASCII");
    let (cert, key) = text.split_once("\n--KEY--\n").expect("cert and key");
    (cert.as_bytes().to_vec(), key.as_bytes().to_vec())
}

/// Imports a self-signed certificate for `name` (CN and SAN) into ACM, as a user imports their
/// own; its ARN. ACM reports it ISSUED.
pub async fn imported_certificate(acm: &aws_sdk_acm::Client, name: &str) -> String {
    use aws_sdk_acm::primitives::Blob;
    let (cert, key) = self_signed(name);
    acm.import_certificate()
        .certificate(Blob::new(cert))
        .private_key(Blob::new(key))
        .send()
        .await
        .expect("ImportCertificate")
        .certificate_arn
        .expect("certificate ARN")
}

/// A Route 53 hosted zone for `name`: private (associated with `vpc_id`) or public; its ID.
pub async fn hosted_zone(
    route53: &aws_sdk_route53::Client,
    name: &str,
    vpc_id: Option<&str>,
) -> String {
    use aws_sdk_route53::types::{Vpc, VpcRegion};
    let mut request = route53
        .create_hosted_zone()
        .name(name)
        .caller_reference(super::unique("zone"));
    if let Some(vpc_id) = vpc_id {
        request = request.vpc(
            Vpc::builder()
                .vpc_id(vpc_id)
                .vpc_region(VpcRegion::UsEast1)
                .build(),
        );
    }
    let zone = request
        .send()
        .await
        .expect("CreateHostedZone")
        .hosted_zone
        .expect("hosted zone");
    zone.id().trim_start_matches("/hostedzone/").to_string()
}
