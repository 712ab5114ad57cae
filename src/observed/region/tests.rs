use super::*;

#[test]
fn what_is_remembered_of_a_deleted_object_is_forgotten() {
    let region = RegionObservations::default();
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:papi-f";
    let function = LiveFunction {
        arn: arn.into(),
        name: "papi-f".into(),
        ..LiveFunction::default()
    };
    region.remember_function("papi-f", Some("r1"), &function);
    region.remember_policy(arn, Some("r1"), Some(&"{}".to_string()));
    region.remember_routes("api1", &[]);
    assert_eq!(
        region.remembered_function_revision(arn).as_deref(),
        Some("r1")
    );
    region.move_function_revision(arn, "r1", "r2");
    assert_eq!(
        region.remembered_function_revision(arn).as_deref(),
        Some("r2")
    );
    // Only from the revision it was read at.
    region.move_function_revision(arn, "r1", "r3");
    assert_eq!(
        region.remembered_function_revision(arn).as_deref(),
        Some("r2")
    );
    region.forget(Some("api1"), Some(arn));
    assert_eq!(region.remembered_function_revision(arn), None);
    assert_eq!(region.policy_revision(arn), None);
    assert!(region.remembered_routes("api1").is_none());
    assert!(region.remembered().function_arns.is_empty());
}
