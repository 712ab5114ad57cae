//! Resource policies, read and compared in one place.
//!
//! - The REST API's: what it must be, how to compare the one AWS returns with it (semantically:
//!   AWS returns it JSON-escaped, minified, with `execute-api:/*` expanded to the full ARN). The
//!   operator compares policies and never evaluates them; the tests' evaluator is in
//!   `tests/support/iam.rs`.
//! - A Lambda function's: whether one of its statements is exactly the service grant a part
//!   needs ([`grants_service`], for the backend's invoke permission).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// The resource every statement covers, as written; AWS stores it expanded to
/// `arn:aws:execute-api:<region>:<account>:<api-id>/*`.
pub const INVOKE_RESOURCE: &str = "execute-api:/*";
pub const INVOKE_ACTION: &str = "execute-api:Invoke";

/// Deny `execute-api:Invoke` unless the request comes through one of `vpc_endpoint_ids`, then
/// allow it: the reference stack's policy, generalised to several endpoints.
pub fn desired_policy(vpc_endpoint_ids: &[String]) -> Value {
    let mut ids: Vec<&String> = vpc_endpoint_ids.iter().collect();
    ids.sort();
    ids.dedup();
    let source_vpce = if ids.len() == 1 {
        json!(ids[0])
    } else {
        json!(ids)
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyUnlessThroughVpcEndpoint",
                "Effect": "Deny",
                "Principal": "*",
                "Action": INVOKE_ACTION,
                "Resource": INVOKE_RESOURCE,
                "Condition": {"StringNotEquals": {"aws:SourceVpce": source_vpce}}
            },
            {
                "Sid": "AllowInvoke",
                "Effect": "Allow",
                "Principal": "*",
                "Action": INVOKE_ACTION,
                "Resource": INVOKE_RESOURCE
            }
        ]
    })
}

/// Parse a policy as API Gateway returns it: plain JSON, or JSON whose quotes are escaped with
/// backslashes (`{\"Version\":...}`), which is what `GetRestApi` answers.
pub fn parse_policy(text: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return match value {
            // A JSON string holding the policy document.
            Value::String(inner) => parse_policy(&inner),
            Value::Object(_) => Some(value),
            _ => None,
        };
    }
    if text.contains("\\\"") {
        let unescaped: String = serde_json::from_str(&format!("\"{text}\"")).ok()?;
        return serde_json::from_str(&unescaped).ok();
    }
    None
}

/// The ARN prefix `execute-api:` stands for on this API.
pub fn execute_api_arn_prefix(region: &str, account_id: &str, rest_api_id: &str) -> String {
    format!("arn:aws:execute-api:{region}:{account_id}:{rest_api_id}/")
}

/// The statements of a policy document: `Statement` is a list, or one object; none when it is
/// absent or null. None when it is anything else (not a policy this crate can read).
pub fn statements(policy: &Value) -> Option<Vec<Value>> {
    match policy.get("Statement") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(list)) => Some(list.clone()),
        Some(single @ Value::Object(_)) => Some(vec![single.clone()]),
        Some(_) => None,
    }
}

/// A canonical form of a policy: statements as a sorted list, every string-or-list field as a
/// sorted list, `Principal: "*"` as `{"AWS": ["*"]}`, this API's full ARNs shortened back to
/// `execute-api:/…`. Two policies are equivalent when their canonical forms are equal.
pub fn canonical(policy: &Value, api_arn_prefix: &str) -> Value {
    let statements = statements(policy).unwrap_or_default();
    let mut canonical_statements: Vec<Value> = statements
        .iter()
        .map(|statement| canonical_statement(statement, api_arn_prefix))
        .collect();
    canonical_statements.sort_by_key(|s| s.to_string());
    json!({
        "Version": policy.get("Version").cloned().unwrap_or(Value::Null),
        "Statement": canonical_statements,
    })
}

fn canonical_statement(statement: &Value, api_arn_prefix: &str) -> Value {
    let Value::Object(fields) = statement else {
        return statement.clone();
    };
    let mut out = Map::new();
    for (key, value) in fields {
        let canonical_value = match key.as_str() {
            "Action" | "NotAction" => sorted_strings(value),
            "Resource" | "NotResource" => {
                let shortened: Vec<Value> = strings(value)
                    .into_iter()
                    .map(|r| match r.strip_prefix(api_arn_prefix) {
                        Some(rest) => Value::String(format!("execute-api:/{rest}")),
                        None => Value::String(r),
                    })
                    .collect();
                sorted_strings(&Value::Array(shortened))
            }
            "Principal" | "NotPrincipal" => match value {
                Value::String(s) if s == "*" => json!({"AWS": ["*"]}),
                Value::Object(principals) => Value::Object(
                    principals
                        .iter()
                        .map(|(k, v)| (k.clone(), sorted_strings(v)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "Condition" => match value {
                Value::Object(operators) => Value::Object(
                    operators
                        .iter()
                        .map(|(op, keys)| {
                            let keys = match keys {
                                Value::Object(keys) => Value::Object(
                                    keys.iter()
                                        .map(|(k, v)| (k.clone(), sorted_strings(v)))
                                        .collect(),
                                ),
                                other => other.clone(),
                            };
                            (op.clone(), keys)
                        })
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), canonical_value);
    }
    Value::Object(out)
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) => list
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        other => vec![other.to_string()],
    }
}

fn sorted_strings(value: &Value) -> Value {
    let mut list = strings(value);
    list.sort();
    list.dedup();
    Value::Array(list.into_iter().map(Value::String).collect())
}

/// Whether the live policy text means the same as `desired`.
pub fn equivalent(live_text: Option<&str>, desired: &Value, api_arn_prefix: &str) -> bool {
    match live_text.and_then(parse_policy) {
        Some(live) => canonical(&live, api_arn_prefix) == canonical(desired, api_arn_prefix),
        None => false,
    }
}

/// Whether `statement` is exactly this grant and nothing more: Allow `action` (IAM reads actions
/// case-insensitively) to the one service principal `service`, under exactly `conditions`
/// (operator, key, value), as `AddPermission` writes it to a Lambda function's policy. Other
/// fields (`Sid`, `Resource`) are not compared.
pub fn grants_service(
    statement: &Value,
    action: &str,
    service: &str,
    conditions: &[(&str, &str, &str)],
) -> bool {
    let effect = statement.get("Effect").and_then(Value::as_str) == Some("Allow");
    let action =
        single_string(statement.get("Action")).is_some_and(|a| a.eq_ignore_ascii_case(action));
    let principal = statement
        .get("Principal")
        .and_then(Value::as_object)
        .is_some_and(|p| p.len() == 1 && single_string(p.get("Service")) == Some(service));
    let expected: BTreeSet<(String, String, String)> = conditions
        .iter()
        .map(|(operator, key, value)| {
            (
                operator.to_string(),
                key.to_ascii_lowercase(),
                value.to_string(),
            )
        })
        .collect();
    let conditions = condition_triples(statement.get("Condition")).is_some_and(|c| c == expected);
    effect && action && principal && conditions
}

/// A string, or a list holding exactly one string (IAM accepts both).
fn single_string(value: Option<&Value>) -> Option<&str> {
    match value? {
        Value::String(s) => Some(s),
        Value::Array(items) if items.len() == 1 => items[0].as_str(),
        _ => None,
    }
}

/// (operator, lowercase key, value) triples of a Condition block: IAM condition keys are
/// case-insensitive (`AWS:SourceArn` = `aws:SourceArn`), operators and values are not.
fn condition_triples(condition: Option<&Value>) -> Option<BTreeSet<(String, String, String)>> {
    let mut triples = BTreeSet::new();
    let Some(condition) = condition else {
        return Some(triples);
    };
    for (operator, entries) in condition.as_object()? {
        for (key, values) in entries.as_object()? {
            let values: Vec<&Value> = match values {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for value in values {
                triples.insert((
                    operator.clone(),
                    key.to_ascii_lowercase(),
                    value.as_str()?.to_string(),
                ));
            }
        }
    }
    Some(triples)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123defg/";

    /// What API Gateway stores: minified, escaped, with the ARN expanded.
    fn as_aws_returns_it(policy: &Value) -> String {
        let expanded = policy
            .to_string()
            .replace("\"execute-api:/*\"", &format!("\"{PREFIX}*\""));
        expanded.replace('"', "\\\"")
    }

    #[test]
    fn the_escaped_expanded_form_aws_returns_is_equivalent() {
        let desired = desired_policy(&["vpce-0123456789abcdef0".to_string()]);
        let live = as_aws_returns_it(&desired);
        assert!(live.starts_with("{\\\"") && live.contains("\\\"Version\\\":\\\"2012-10-17\\\""));
        assert!(equivalent(Some(&live), &desired, PREFIX));
        assert!(equivalent(Some(&desired.to_string()), &desired, PREFIX));
    }

    #[test]
    fn endpoint_order_and_string_or_list_do_not_matter() {
        let a = desired_policy(&["vpce-b".into(), "vpce-a".into()]);
        let b = desired_policy(&["vpce-a".into(), "vpce-b".into()]);
        assert!(equivalent(Some(&a.to_string()), &b, PREFIX));
        let mut principal_object = desired_policy(&["vpce-a".into()]);
        principal_object["Statement"][1]["Principal"] = json!({"AWS": "*"});
        principal_object["Statement"][1]["Action"] = json!(["execute-api:Invoke"]);
        assert!(equivalent(
            Some(&principal_object.to_string()),
            &desired_policy(&["vpce-a".into()]),
            PREFIX
        ));
    }

    #[test]
    fn real_changes_are_drift() {
        let desired = desired_policy(&["vpce-a".into()]);
        let other_endpoint = desired_policy(&["vpce-b".into()]);
        assert!(!equivalent(
            Some(&other_endpoint.to_string()),
            &desired,
            PREFIX
        ));
        let mut no_deny = desired.clone();
        no_deny["Statement"].as_array_mut().map(|s| s.remove(0));
        assert!(!equivalent(Some(&no_deny.to_string()), &desired, PREFIX));
        let other_api = desired.to_string().replace(
            "\"execute-api:/*\"",
            "\"arn:aws:execute-api:us-east-1:123456789012:zzz/*\"",
        );
        assert!(!equivalent(Some(&other_api), &desired, PREFIX));
        assert!(!equivalent(None, &desired, PREFIX));
        assert!(!equivalent(Some("not json"), &desired, PREFIX));
    }

    const SOURCE_ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123defg/*";

    /// The statement `AddPermission` writes for the backend's invoke permission, as Lambda's
    /// GetPolicy returns it.
    fn lambda_statement() -> Value {
        let text = r#"{"Version":"2012-10-17","Id":"default","Statement":[{"Sid":"papi-x",
            "Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},
            "Action":"lambda:InvokeFunction",
            "Resource":"arn:aws:lambda:us-east-1:123456789012:function:f","Condition":{
            "ArnLike":{"AWS:SourceArn":"arn:aws:execute-api:us-east-1:123456789012:abc123defg/*"},
            "StringEquals":{"AWS:SourceAccount":"123456789012"}}}]}"#;
        let policy: Value = serde_json::from_str(text).expect("JSON");
        statements(&policy).expect("statements").remove(0)
    }

    fn is_the_invoke_grant(statement: &Value) -> bool {
        grants_service(
            statement,
            "lambda:InvokeFunction",
            "apigateway.amazonaws.com",
            &[
                ("ArnLike", "aws:SourceArn", SOURCE_ARN),
                ("StringEquals", "aws:SourceAccount", "123456789012"),
            ],
        )
    }

    #[test]
    fn a_service_grant_reads_keys_case_insensitively_and_one_element_lists() {
        assert!(is_the_invoke_grant(&lambda_statement()));
        let mut st = lambda_statement();
        st["Condition"] = json!({
            "ArnLike": {"aws:SourceArn": [SOURCE_ARN]},
            "StringEquals": {"aws:sourceaccount": "123456789012"}
        });
        st["Principal"] = json!({"Service": ["apigateway.amazonaws.com"]});
        st["Action"] = "Lambda:invokefunction".into();
        assert!(is_the_invoke_grant(&st));
    }

    #[test]
    fn any_other_statement_is_not_the_service_grant() {
        // Another SourceArn, principal or account, a condition less, a wider action, a Deny.
        let edits: [fn(&mut Value); 7] = [
            |st: &mut Value| {
                st["Condition"]["ArnLike"]["AWS:SourceArn"] =
                    "arn:aws:execute-api:us-east-1:123456789012:*/*".into()
            },
            |st: &mut Value| st["Principal"] = json!({"Service": "events.amazonaws.com"}),
            |st: &mut Value| st["Principal"] = json!("*"),
            |st: &mut Value| {
                st["Condition"]["StringEquals"]["AWS:SourceAccount"] = "999999999999".into()
            },
            |st: &mut Value| {
                st["Condition"].as_object_mut().map(|c| c.remove("ArnLike"));
            },
            |st: &mut Value| st["Action"] = "lambda:*".into(),
            |st: &mut Value| st["Effect"] = "Deny".into(),
        ];
        for edit in edits {
            let mut st = lambda_statement();
            edit(&mut st);
            assert!(!is_the_invoke_grant(&st), "{st}");
        }
    }

    #[test]
    fn statements_are_a_list_one_object_or_none() {
        let one = json!({"Statement": {"Effect": "Allow"}});
        assert_eq!(statements(&one), Some(vec![json!({"Effect": "Allow"})]));
        assert_eq!(statements(&json!({"Version": "2012-10-17"})), Some(vec![]));
        assert_eq!(statements(&json!({"Statement": null})), Some(vec![]));
        assert_eq!(statements(&json!({"Statement": "Allow"})), None);
    }
}
