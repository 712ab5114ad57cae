use super::*;
use crate::parts::backend::test_support::owner;

fn desired_perm(api: &str) -> DesiredPermission {
    desired_permission(
        &owner(),
        "arn:aws:lambda:us-east-1:123456789012:function:f",
        "us-east-1",
        "123456789012",
        api,
    )
}

/// A statement as Lambda's GetPolicy returns it for AddPermission with SourceArn/SourceAccount.
fn aws_statement(sid: &str, source_arn: &str) -> serde_json::Value {
    serde_json::json!({
        "Sid": sid, "Effect": "Allow",
        "Principal": {"Service": "apigateway.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "Condition": {
            "ArnLike": {"AWS:SourceArn": source_arn},
            "StringEquals": {"AWS:SourceAccount": "123456789012"}
        }
    })
}

fn policy(statements: Vec<serde_json::Value>) -> String {
    serde_json::json!({"Version": "2012-10-17", "Id": "default", "Statement": statements})
        .to_string()
}

/// A policy holding `ours` and a statement of someone else's.
fn beside_someone_elses(ours: serde_json::Value) -> String {
    let theirs = aws_statement(
        "someone-else",
        "arn:aws:execute-api:us-east-1:123456789012:zzz/*",
    );
    policy(vec![ours, theirs])
}

#[test]
fn desired_permission_is_scoped_to_the_api() {
    let d = desired_perm("abc123defg");
    assert_eq!(
        d.source_arn,
        "arn:aws:execute-api:us-east-1:123456789012:abc123defg/*"
    );
    assert_eq!(d.source_account, "123456789012");
    assert_eq!(
        d.statement_id,
        owner().permission_statement_id("abc123defg")
    );
}

#[test]
fn permission_in_sync_needs_nothing() {
    let d = desired_perm("api1");
    let p = beside_someone_elses(aws_statement(&d.statement_id, &d.source_arn));
    let prefix = owner().permission_statement_prefix();
    assert!(
        permission_diff(Some(&p), &prefix, &d)
            .expect("diff")
            .is_empty()
    );
}

#[test]
fn missing_stale_and_edited_permissions() {
    let d = desired_perm("api2");
    let prefix = owner().permission_statement_prefix();
    assert_eq!(
        permission_diff(None, &prefix, &d).expect("diff"),
        PermissionDiff {
            remove: vec![],
            add: true
        }
    );
    let stale = desired_perm("api1");
    let p = beside_someone_elses(aws_statement(&stale.statement_id, &stale.source_arn));
    assert_eq!(
        permission_diff(Some(&p), &prefix, &d).expect("diff"),
        PermissionDiff {
            remove: vec![stale.statement_id.clone()],
            add: true
        }
    );
    // Our statement edited (here another SourceArn; `policy::grants_service` says what counts as
    // edited): replaced.
    let mut st = aws_statement(&d.statement_id, &d.source_arn);
    st["Condition"]["ArnLike"]["AWS:SourceArn"] =
        "arn:aws:execute-api:us-east-1:123456789012:*/*".into();
    assert_eq!(
        permission_diff(Some(&policy(vec![st])), &prefix, &d).expect("diff"),
        PermissionDiff {
            remove: vec![d.statement_id.clone()],
            add: true
        }
    );
    // Another owner's statements (different prefix) are not ours to touch.
    let mut other = owner();
    other.name = "payments".into();
    let theirs = other.permission_statement_id("api9");
    let p = policy(vec![aws_statement(
        &theirs,
        "arn:aws:execute-api:us-east-1:123456789012:api9/*",
    )]);
    assert_eq!(
        permission_diff(Some(&p), &prefix, &d).expect("diff"),
        PermissionDiff {
            remove: vec![],
            add: true
        }
    );
    assert_eq!(
        owner_statement_ids(Some(&p), &prefix).expect("ids"),
        Vec::<String>::new()
    );
    assert_eq!(
        owner_statement_ids(Some(&p), &other.permission_statement_prefix()).expect("ids"),
        vec![theirs]
    );
    assert!(permission_diff(Some("not json"), &prefix, &d).is_err());
}
