//! The REST API's resource policy as the operator writes it (`policy::desired_policy`) and as
//! API Gateway returns it (escaped, minified, `execute-api:/*` expanded), evaluated by the tests'
//! IAM evaluator: only requests through the named endpoints may invoke.

use privateapi_operator::policy::{INVOKE_ACTION, desired_policy, parse_policy};
use serde_json::{Value, json};

use crate::support::iam::{Decision, evaluate_resource_policy, wildcard};

const PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123defg/";

/// What API Gateway stores: minified, escaped, with the ARN expanded.
fn as_aws_returns_it(policy: &Value) -> String {
    let expanded = policy
        .to_string()
        .replace("\"execute-api:/*\"", &format!("\"{PREFIX}*\""));
    expanded.replace('"', "\\\"")
}

#[test]
fn only_the_named_endpoints_may_invoke_and_deny_overrides_allow() {
    let policy = desired_policy(&["vpce-owned".into(), "vpce-extra".into()]);
    let resource = format!("{PREFIX}prod/GET/");
    let live = parse_policy(&as_aws_returns_it(&policy)).expect("parses");
    for p in [&policy, &live] {
        let decide = |vpce| evaluate_resource_policy(p, PREFIX, INVOKE_ACTION, &resource, vpce);
        assert_eq!(decide(Some("vpce-owned")), Decision::Allow);
        assert_eq!(decide(Some("vpce-extra")), Decision::Allow);
        assert_eq!(decide(Some("vpce-other")), Decision::ExplicitDeny);
        assert_eq!(
            decide(None),
            Decision::ExplicitDeny,
            "not through an endpoint"
        );
    }
    let allow_only = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    assert_eq!(
        evaluate_resource_policy(&allow_only, PREFIX, INVOKE_ACTION, &resource, None),
        Decision::Allow
    );
    assert_eq!(
        evaluate_resource_policy(
            &json!({"Statement": []}),
            PREFIX,
            INVOKE_ACTION,
            &resource,
            None
        ),
        Decision::ImplicitDeny
    );
}

#[test]
fn wildcards_match_as_iam_matches_them() {
    assert!(wildcard("execute-api:/*", "execute-api:/prod/GET/", false));
    assert!(wildcard(
        "arn:aws:execute-api:*:*:abc/*",
        "arn:aws:execute-api:us-east-1:1:abc/x",
        false
    ));
    assert!(!wildcard(
        "execute-api:Invoke",
        "execute-api:ManageConnections",
        true
    ));
    assert!(wildcard("execute-api:*", "execute-api:Invoke", true));
    assert!(wildcard("ec2:Describe*", "EC2:DescribeVpcs", true));
    assert!(!wildcard("papi-*", "xpapi-1", false));
    assert!(
        !wildcard("Abc", "abc", false),
        "resources are case-sensitive"
    );
}
