//! The tests' IAM policy evaluator, for identity policies (`deploy/iam/*.json`, checked by
//! `checks/iam_policy.rs`) and resource policies (the REST API's, checked end to end): statements
//! with `Action`/`Resource` wildcards and the condition operators the project's policies use,
//! decided as IAM does: an explicit Deny overrides any Allow; without an Allow the request is
//! denied. What it does not know (NotAction, an unknown operator) fails the test instead of being
//! ignored. The operator itself never evaluates policies: it compares them (`policy::equivalent`).

use std::collections::BTreeMap;

use serde_json::Value;

/// One authorization request: an action on a resource, with the request's condition keys.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub action: String,
    pub resource: String,
    /// Condition keys present in the request (names compared case-insensitively, as IAM does).
    pub context: BTreeMap<String, String>,
}

impl Request {
    pub fn new(action: &str, resource: impl Into<String>) -> Self {
        Self {
            action: action.to_string(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    /// With condition key `key` set to `value`.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_lowercase(), value.to_string());
        self
    }

    fn key(&self, key: &str) -> Option<&String> {
        self.context.get(&key.to_lowercase())
    }
}

/// The outcome of evaluating a policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// An explicit Deny statement matched.
    ExplicitDeny,
    /// No statement allowed it.
    ImplicitDeny,
}

/// Evaluate `policy` for `request`; `expand` rewrites each `Resource` pattern first (resource
/// policies of REST APIs write `execute-api:/…` for the API's own ARN).
pub fn evaluate_with(
    policy: &Value,
    request: &Request,
    expand: impl Fn(&str) -> String,
) -> Decision {
    let statements = match policy.get("Statement") {
        Some(Value::Array(statements)) => statements.clone(),
        Some(statement @ Value::Object(_)) => vec![statement.clone()],
        _ => Vec::new(),
    };
    let mut allowed = false;
    for statement in &statements {
        assert!(
            statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
            "the evaluator does not know NotAction/NotResource: {statement}"
        );
        let matches = strings(statement.get("Action"))
            .iter()
            .any(|a| wildcard(a, &request.action, true))
            && strings(statement.get("Resource"))
                .iter()
                .any(|r| wildcard(&expand(r), &request.resource, false))
            && conditions_hold(statement, request);
        if !matches {
            continue;
        }
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Deny") => return Decision::ExplicitDeny,
            Some("Allow") => allowed = true,
            other => panic!("a statement's Effect is Allow or Deny, not {other:?}"),
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// Evaluate an identity policy for `request`.
pub fn evaluate(policy: &Value, request: &Request) -> Decision {
    evaluate_with(policy, request, str::to_string)
}

/// Evaluate a REST API's resource policy for `action` on `resource`, with the request's
/// `aws:SourceVpce` (absent when the request does not come through an endpoint).
/// `execute-api:/…` in a statement stands for `api_arn_prefix…`, as API Gateway expands it.
pub fn evaluate_resource_policy(
    policy: &Value,
    api_arn_prefix: &str,
    action: &str,
    resource: &str,
    source_vpce: Option<&str>,
) -> Decision {
    let mut request = Request::new(action, resource);
    if let Some(vpce) = source_vpce {
        request = request.with("aws:SourceVpce", vpce);
    }
    evaluate_with(policy, &request, |pattern| {
        match pattern.strip_prefix("execute-api:/") {
            Some(rest) => format!("{api_arn_prefix}{rest}"),
            None => pattern.to_string(),
        }
    })
}

/// A string or a list of strings (absent: none).
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().expect("a list of strings").to_string())
            .collect(),
        Some(other) => panic!("expected a string or a list of strings: {other}"),
    }
}

fn conditions_hold(statement: &Value, request: &Request) -> bool {
    let Some(condition) = statement.get("Condition") else {
        return true;
    };
    let operators = condition.as_object().expect("Condition is an object");
    operators.iter().all(|(operator, keys)| {
        keys.as_object()
            .expect("a condition operator maps keys to values")
            .iter()
            .all(|(key, values)| {
                condition_holds(operator, request.key(key), &strings(Some(values)))
            })
    })
}

/// One condition operator on the request's value of one key (`None`: the key is absent).
fn condition_holds(operator: &str, actual: Option<&String>, values: &[String]) -> bool {
    if operator == "Null" {
        let must_be_absent = values == ["true"];
        return actual.is_none() == must_be_absent;
    }
    let (base, if_exists) = match operator.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    let Some(actual) = actual else {
        // IAM: `…IfExists` on an absent key matches; so does a negated operator.
        return if_exists || base.starts_with("StringNot") || base.starts_with("ArnNot");
    };
    match base {
        "StringEquals" => values.iter().any(|v| v == actual),
        "StringNotEquals" => values.iter().all(|v| v != actual),
        "StringLike" | "ArnLike" => values.iter().any(|v| wildcard(v, actual, false)),
        "StringNotLike" | "ArnNotLike" => values.iter().all(|v| !wildcard(v, actual, false)),
        other => panic!("the evaluator does not know the condition operator {other}"),
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
pub fn wildcard(pattern: &str, value: &str, case_insensitive: bool) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            value.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), value.chars().collect())
    };
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}
