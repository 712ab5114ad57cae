//! The published quota table and the `--aws-quota` overrides.

/// One published quota: `rate_per_s` tokens per second into a bucket of `burst` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// The SDK's service name (`API Gateway`, `Lambda`, `EC2`), as in the metrics.
    pub service: String,
    /// `None`: the service's total over all operations.
    pub operation: Option<String>,
    pub rate_per_s: f64,
    pub burst: f64,
    /// Where the figure comes from.
    pub source: &'static str,
}

const APIGW_QUOTAS: &str = "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#api-gateway-control-service-limits-table";
const LAMBDA_QUOTAS: &str =
    "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html#api-requests";
const ACM_QUOTAS: &str =
    "https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html#api-rate-limits";
const ROUTE53_QUOTAS: &str = "https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DNSLimitations.html#limits-api-requests";
const EC2_THROTTLING: &str = "https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html#throttling-limits-rate-based";

/// The published quotas, per account and region.
///
/// EC2 has no service-wide bucket: each API has its own, sized by its category (non-mutating,
/// unfiltered-and-unpaginated non-mutating, mutating, and a few resource-intensive actions with
/// smaller buckets). The operator's EC2 calls are listed one by one; an EC2 operation missing
/// here falls back to the mutating bucket (the smallest of the general categories) per operation.
pub fn published_quotas() -> Vec<Quota> {
    let q = |service: &str, operation: Option<&str>, rate_per_s: f64, burst: f64, source| Quota {
        service: service.to_string(),
        operation: operation.map(str::to_string),
        rate_per_s,
        burst,
        source,
    };
    let mut quotas = vec![
        // API Gateway: "API Gateway quotas for creating, deploying and managing an API".
        q("API Gateway", None, 10.0, 40.0, APIGW_QUOTAS),
        q(
            "API Gateway",
            Some("CreateRestApi"),
            1.0 / 3.0,
            1.0,
            APIGW_QUOTAS,
        ),
        q(
            "API Gateway",
            Some("ImportRestApi"),
            1.0 / 3.0,
            1.0,
            APIGW_QUOTAS,
        ),
        q("API Gateway", Some("PutRestApi"), 1.0, 1.0, APIGW_QUOTAS),
        q(
            "API Gateway",
            Some("CreateDeployment"),
            1.0 / 5.0,
            1.0,
            APIGW_QUOTAS,
        ),
        q(
            "API Gateway",
            Some("DeleteRestApi"),
            1.0 / 30.0,
            1.0,
            APIGW_QUOTAS,
        ),
        q(
            "API Gateway",
            Some("GetResources"),
            5.0 / 2.0,
            5.0,
            APIGW_QUOTAS,
        ),
        q(
            "API Gateway",
            Some("CreateResource"),
            5.0,
            5.0,
            APIGW_QUOTAS,
        ),
        // Lambda: "API request rate quotas". The control-plane total excludes GetFunction and
        // GetPolicy, which have their own.
        q("Lambda", None, 15.0, 15.0, LAMBDA_QUOTAS),
        q("Lambda", Some("GetFunction"), 100.0, 100.0, LAMBDA_QUOTAS),
        q("Lambda", Some("GetPolicy"), 15.0, 15.0, LAMBDA_QUOTAS),
        // ACM: "API rate quotas" (DescribeCertificate 10/s). Route 53: five requests a second
        // per account for all its APIs (global: the same bucket stands in each region's pacer).
        q("ACM", Some("DescribeCertificate"), 10.0, 10.0, ACM_QUOTAS),
        q("Route 53", None, 5.0, 5.0, ROUTE53_QUOTAS),
    ];
    // EC2: request token limits per API (bucket size, refill per second).
    for operation in [
        "DescribeVpcEndpoints",
        "DescribeSecurityGroups",
        "DescribeSubnets",
        "DescribeVpcs",
        "DescribeNetworkInterfaces",
    ] {
        quotas.push(q("EC2", Some(operation), 20.0, 100.0, EC2_THROTTLING));
    }
    for operation in [
        "CreateSecurityGroup",
        "DeleteSecurityGroup",
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
        "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupEgress",
        "DeleteTags",
    ] {
        quotas.push(q("EC2", Some(operation), 5.0, 50.0, EC2_THROTTLING));
    }
    quotas.push(q("EC2", Some("CreateTags"), 10.0, 100.0, EC2_THROTTLING));
    for operation in [
        "CreateVpcEndpoint",
        "ModifyVpcEndpoint",
        "DeleteVpcEndpoints",
    ] {
        quotas.push(q("EC2", Some(operation), 0.3, 4.0, EC2_THROTTLING));
    }
    quotas
}

/// Operations with a quota of their own that does not count towards their service's total:
/// Lambda's 15/s control-plane total excludes GetFunction and GetPolicy ("API request rate
/// quotas"). API Gateway's per-operation quotas count towards its 10/s as well.
pub(super) fn outside_service_total(service: &str, operation: &str) -> bool {
    service == "Lambda" && ["GetFunction", "GetPolicy"].contains(&operation)
}

/// Services whose operations each have their own bucket (no service-wide total): an operation
/// missing from the table gets this default.
pub(super) fn per_operation_default(service: &str) -> Option<(f64, f64)> {
    (service == "EC2").then_some((5.0, 50.0))
}

/// Parse `--aws-quota` overrides: `SERVICE[:OPERATION]=RATE[/BURST]`, RATE per second (`0.2`) or
/// as `1/5s`, e.g. `API Gateway:CreateDeployment=1/5s`, `Lambda=10/10`.
pub fn parse_override(text: &str) -> Result<Quota, String> {
    let (target, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected SERVICE[:OPERATION]=RATE[/BURST]"))?;
    let (service, operation) = match target.split_once(':') {
        Some((service, operation)) => (service.trim(), Some(operation.trim().to_string())),
        None => (target.trim(), None),
    };
    if !["API Gateway", "Lambda", "EC2", "ACM", "Route 53"].contains(&service) {
        return Err(format!(
            "{text:?}: the service is one of \"API Gateway\", \"Lambda\", \"EC2\", \"ACM\", \"Route 53\""
        ));
    }
    let value = value.trim();
    // `1/5s`: one request every five seconds.
    let (rate_per_s, burst) = if let Some((count, period)) = value
        .split_once('/')
        .filter(|(_, period)| period.ends_with('s'))
    {
        let count: f64 = count
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: bad count"))?;
        let seconds: f64 = period
            .trim_end_matches('s')
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: bad period"))?;
        (count / seconds, count.max(1.0))
    } else {
        let (rate, burst) = match value.split_once('/') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (value, None),
        };
        let rate: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: bad rate"))?;
        let burst = match burst {
            Some(burst) => burst
                .trim()
                .parse()
                .map_err(|_| format!("{text:?}: bad burst"))?,
            None => rate.max(1.0),
        };
        (rate, burst)
    };
    if !(rate_per_s > 0.0 && rate_per_s.is_finite()) || burst < 1.0 {
        return Err(format!("{text:?}: the rate must be > 0 and the burst >= 1"));
    }
    Ok(Quota {
        service: service.to_string(),
        operation,
        rate_per_s,
        burst,
        source: "--aws-quota",
    })
}

#[cfg(test)]
mod tests;
