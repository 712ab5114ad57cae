use super::*;

const PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:abc/";

fn desired(ids: &[&str]) -> DesiredApi {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    DesiredApi {
        description: None,
        policy: policy::desired_policy(&ids),
        vpc_endpoint_ids: ids.into_iter().collect(),
        tags: BTreeMap::from([("privateapi.io/owner".to_string(), "ns/a".to_string())]),
    }
}

fn live_matching(d: &DesiredApi) -> LiveApi {
    LiveApi {
        id: "abc".into(),
        endpoint_types: vec!["PRIVATE".into()],
        vpc_endpoint_ids: d.vpc_endpoint_ids.iter().cloned().collect(),
        // As API Gateway stores it: escaped, with the ARN expanded.
        policy: Some(
            d.policy
                .to_string()
                .replace("execute-api:/*", &format!("{PREFIX}*"))
                .replace('"', "\\\""),
        ),
        tags: d.tags.clone().into_iter().collect(),
        ..Default::default()
    }
}

#[test]
fn in_sync_means_no_operation() {
    let d = desired(&["vpce-1", "vpce-2"]);
    let (ops, tags) = diff(&live_matching(&d), &d, PREFIX);
    assert!(ops.is_empty(), "{ops:?}");
    assert!(tags.is_empty());
}

#[test]
fn endpoint_ids_are_added_now_and_detached_after_the_deployment() {
    let d = desired(&["vpce-1", "vpce-3"]);
    let mut live = live_matching(&desired(&["vpce-1", "vpce-2"]));
    live.policy = Some(d.policy.to_string());
    let (ops, _) = diff(&live, &d, PREFIX);
    let described: Vec<String> = ops
        .iter()
        .map(|o| format!("{} {}", describe_op(o), o.value().unwrap_or("")))
        .collect();
    // vpce-2 may be what clients go through until the stage serves a policy without it.
    assert_eq!(
        described,
        vec!["add /endpointConfiguration/vpcEndpointIds vpce-3"]
    );
    let attached: BTreeSet<String> = ["vpce-1", "vpce-2", "vpce-3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        stale_endpoint_ids(&attached, &d),
        vec!["vpce-2".to_string()]
    );
}

#[test]
fn policy_type_description_and_tag_drift_are_found() {
    let d = desired(&["vpce-1"]);
    let mut live = live_matching(&d);
    live.policy = Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into());
    live.endpoint_types = vec!["REGIONAL".into()];
    live.description = Some("edited".into());
    live.tags.clear();
    let (ops, tags) = diff(&live, &d, PREFIX);
    let described: Vec<String> = ops.iter().map(describe_op).collect();
    assert_eq!(
        described,
        vec![
            "replace /endpointConfiguration/types/REGIONAL",
            "replace /policy",
            "replace /description"
        ]
    );
    assert_eq!(tags.len(), 1);
}
