use super::*;
use crate::error::Error;
use crate::parts::endpoint::fixtures::live_endpoint;

#[test]
fn keeps_the_endpoint_in_status_else_the_oldest() {
    let mut a = live_endpoint("vpce-a");
    a.created = (200, 0);
    let mut b = live_endpoint("vpce-b");
    b.created = (100, 5);
    let mut c = live_endpoint("vpce-c");
    c.created = (100, 5);
    let (keep, others) = choose_endpoint(vec![a.clone(), b.clone(), c.clone()], None);
    assert_eq!(keep.map(|k| k.id), Some("vpce-b".to_string()));
    assert_eq!(
        others.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["vpce-a", "vpce-c"]
    );
    let (keep, others) = choose_endpoint(vec![a, b, c], Some("vpce-a"));
    assert_eq!(keep.map(|k| k.id), Some("vpce-a".to_string()));
    assert_eq!(others.len(), 2);
    let (keep, others) = choose_endpoint(Vec::new(), Some("vpce-a"));
    assert!(keep.is_none() && others.is_empty());
}

#[test]
fn regional_dns_name_comes_first() {
    let names: Vec<String> = [
        "vpce-0abc-x1y2-us-east-1a.execute-api.us-east-1.vpce.amazonaws.com",
        "execute-api.us-east-1.amazonaws.com",
        "vpce-0abc-x1y2.execute-api.us-east-1.vpce.amazonaws.com",
        "vpce-0abc-x1y2-us-east-1b.execute-api.us-east-1.vpce.amazonaws.com",
    ]
    .map(String::from)
    .to_vec();
    let ordered = order_dns_names(&names, "us-east-1");
    assert_eq!(
        ordered[0],
        "vpce-0abc-x1y2.execute-api.us-east-1.vpce.amazonaws.com"
    );
    assert_eq!(ordered[1], names[0]);
    assert_eq!(ordered[2], names[3]);
    assert_eq!(ordered[3], "execute-api.us-east-1.amazonaws.com");
    assert_eq!(
        regional_dns_name(&names, "us-east-1"),
        Some("vpce-0abc-x1y2.execute-api.us-east-1.vpce.amazonaws.com")
    );
    assert_eq!(regional_dns_name(&names[..1], "us-east-1"), None);
}

#[test]
fn states_are_compared_case_insensitively() {
    assert_eq!(lifecycle("available"), Lifecycle::Available);
    assert_eq!(lifecycle("Available"), Lifecycle::Available);
    assert_eq!(lifecycle("pendingAcceptance"), Lifecycle::Pending);
    assert_eq!(lifecycle("deleting"), Lifecycle::Gone);
    assert_eq!(lifecycle("Rejected"), Lifecycle::Failed);
    assert_eq!(lifecycle("partial"), Lifecycle::Other);
}

#[test]
fn a_referenced_endpoint_must_be_an_available_execute_api_interface() {
    let region = "us-east-1";
    let ok = live_endpoint("vpce-1");
    let state = check_referenced(&ok, region).expect("usable");
    assert!(state.ready);
    assert_eq!(state.reason, "Available");

    let mut pending = ok.clone();
    pending.state = "pendingAcceptance".into();
    let state = check_referenced(&pending, region).expect("usable later");
    assert!(!state.ready);
    assert_eq!(state.reason, "Pending");
    assert!(
        state.message.contains("waiting for vpce-1"),
        "{}",
        state.message
    );

    let field_of = |live: &LiveEndpoint| match check_referenced(live, region) {
        Err(Error::InvalidSpec { field, message }) => (field, message),
        other => panic!("expected InvalidSpec, got {other:?}"),
    };
    let mut gateway = ok.clone();
    gateway.endpoint_type = "Gateway".into();
    let (field, message) = field_of(&gateway);
    assert_eq!(field, "spec.endpoint.id");
    assert!(message.contains("Gateway"), "{message}");
    let mut sqs = ok.clone();
    sqs.service_name = "com.amazonaws.us-east-1.sqs".into();
    assert!(field_of(&sqs).1.contains("com.amazonaws.us-east-1.sqs"));
    let mut other_region = ok.clone();
    other_region.service_name = "com.amazonaws.eu-west-1.execute-api".into();
    field_of(&other_region);
    for state in ["deleting", "deleted", "failed", "rejected", "expired"] {
        let mut gone = ok.clone();
        gone.state = state.into();
        assert!(field_of(&gone).1.contains(state));
    }
}
