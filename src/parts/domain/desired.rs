//! What the private custom domain name must look like, and the pure plan from what it is.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::crd::DomainSpec;
use crate::model::{LiveAssociation, LiveDomain, LiveMapping, LiveRecord};
use crate::parts::missing_tags;
use crate::policy;

/// Everything `spec.domain` asks for, once the stage and the endpoints are known.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredDomain {
    pub name: String,
    pub certificate_arn: String,
    pub security_policy: &'static str,
    /// Deny `execute-api:Invoke` unless through one of `endpoints` (the REST API's own policy).
    pub policy: Value,
    pub tags: BTreeMap<String, String>,
    /// Every endpoint of the object: each gets an access association.
    pub endpoints: BTreeSet<String>,
    pub mapping: LiveMapping,
    /// The CNAME to publish, with its zone.
    pub record: Option<(String, LiveRecord)>,
}

impl DesiredDomain {
    /// `endpoint_dns`: the DNS name of the endpoint the record points at (the object's own).
    pub fn new(
        spec: &DomainSpec,
        tags: BTreeMap<String, String>,
        endpoints: BTreeSet<String>,
        rest_api_id: &str,
        stage: &str,
        endpoint_dns: Option<&str>,
    ) -> Self {
        let ids: Vec<String> = endpoints.iter().cloned().collect();
        Self {
            name: spec.name.clone(),
            certificate_arn: spec.certificate_arn.clone(),
            security_policy: spec.security_policy.as_str(),
            policy: policy::desired_policy(&ids),
            tags,
            endpoints,
            mapping: LiveMapping {
                base_path: spec.base_path_or_none().to_string(),
                rest_api_id: rest_api_id.to_string(),
                stage: stage.to_string(),
            },
            record: match (&spec.hosted_zone_id, endpoint_dns) {
                (Some(zone), Some(target)) => Some((
                    zone.clone(),
                    LiveRecord {
                        name: spec.name.clone(),
                        target: target.trim_end_matches('.').to_string(),
                    },
                )),
                _ => None,
            },
        }
    }
}

/// What is there of one domain name: the domain, its associations, its mappings, its record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveDomainState {
    pub domain: LiveDomain,
    pub associations: Vec<LiveAssociation>,
    pub mappings: Vec<LiveMapping>,
    pub record: Option<LiveRecord>,
}

/// The smallest set of changes from what is there to what the spec asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DomainPlan {
    /// Replace the domain name's resource policy.
    pub policy: bool,
    pub certificate: bool,
    pub security_policy: bool,
    pub tags: BTreeMap<String, String>,
    /// Endpoints to associate.
    pub associate: Vec<String>,
    /// Associations of endpoints the spec no longer names.
    pub disassociate: Vec<LiveAssociation>,
    /// The mapping to create (none at the base path yet).
    pub create_mapping: bool,
    /// The mapping at the base path points at another API or stage: replace it.
    pub replace_mapping: Option<LiveMapping>,
    /// Mappings at other base paths (an earlier `basePath`).
    pub stale_mappings: Vec<LiveMapping>,
    /// Publish (or correct) the record.
    pub upsert_record: bool,
}

impl DomainPlan {
    pub fn is_empty(&self) -> bool {
        *self == DomainPlan::default()
    }
}

/// The plan for a domain name that exists; `execute_arn` is the ARN `execute-api:/*` stands for
/// in its policy as AWS returns it ([`policy_arn`]).
pub fn plan(live: &LiveDomainState, desired: &DesiredDomain, execute_arn: &str) -> DomainPlan {
    let associated: BTreeSet<&str> = live
        .associations
        .iter()
        .map(|a| a.source.as_str())
        .collect();
    let at_base_path = live
        .mappings
        .iter()
        .find(|m| m.base_path == desired.mapping.base_path);
    DomainPlan {
        policy: !policy_equivalent(live.domain.policy.as_deref(), &desired.policy, execute_arn),
        certificate: live.domain.certificate_arn.as_deref() != Some(&desired.certificate_arn),
        security_policy: live.domain.security_policy.as_deref() != Some(desired.security_policy),
        tags: missing_tags(&desired.tags, &live.domain.tags),
        associate: desired
            .endpoints
            .iter()
            .filter(|e| !associated.contains(e.as_str()))
            .cloned()
            .collect(),
        disassociate: live
            .associations
            .iter()
            .filter(|a| !desired.endpoints.contains(&a.source))
            .cloned()
            .collect(),
        create_mapping: at_base_path.is_none(),
        replace_mapping: at_base_path.filter(|m| **m != desired.mapping).cloned(),
        stale_mappings: live
            .mappings
            .iter()
            .filter(|m| m.base_path != desired.mapping.base_path)
            .cloned()
            .collect(),
        upsert_record: desired
            .record
            .as_ref()
            .is_some_and(|(_, record)| live.record.as_ref() != Some(record)),
    }
}

/// Whether a certificate for `names` (its domain and subject alternative names) covers `host`,
/// as ACM and TLS match them: the same name, or `*.rest` for one more label (`*.example.com`
/// covers `api.example.com`, not `example.com` or `a.b.example.com`). Case-insensitive.
pub fn covers(names: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|name| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(rest) => host
                .split_once('.')
                .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
            None => name == host,
        }
    })
}

/// The ARN `execute-api:/*` stands for in a private domain name's policy as AWS returns it (the
/// domain name's execute-api ARN itself; `execute-api:/rest` is that ARN followed by `/rest`).
pub fn policy_arn(region: &str, account_id: &str, name: &str, id: &str) -> String {
    format!("arn:aws:execute-api:{region}:{account_id}:/domainnames/{name}+{id}")
}

/// Whether the domain name's policy as AWS returns it (`live_text`) says what `desired` says:
/// its expanded resources written back in the `execute-api:` shorthand, then compared as the
/// REST API's policy is.
pub fn policy_equivalent(live_text: Option<&str>, desired: &Value, execute_arn: &str) -> bool {
    let Some(mut live) = live_text.and_then(policy::parse_policy) else {
        return false;
    };
    let shorten = |resource: &mut Value| {
        if let Value::String(r) = resource {
            if r == execute_arn {
                *r = policy::INVOKE_RESOURCE.to_string();
            } else if let Some(rest) = r.strip_prefix(execute_arn) {
                *r = format!("execute-api:{rest}");
            }
        }
    };
    if let Some(statements) = live.get_mut("Statement") {
        let list: Vec<&mut Value> = match statements {
            Value::Array(list) => list.iter_mut().collect(),
            single => vec![single],
        };
        for statement in list {
            for key in ["Resource", "NotResource"] {
                match statement.get_mut(key) {
                    Some(Value::Array(resources)) => resources.iter_mut().for_each(shorten),
                    Some(resource) => shorten(resource),
                    None => {}
                }
            }
        }
    }
    policy::canonical(&live, "") == policy::canonical(desired, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SecurityPolicy;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "orders.internal.example.com".into(),
            certificate_arn: "arn:aws:acm:us-east-1:123456789012:certificate/abc".into(),
            base_path: None,
            hosted_zone_id: Some("Z0123456789ABC".into()),
            security_policy: SecurityPolicy::Tls12,
        }
    }

    fn desired(endpoints: &[&str]) -> DesiredDomain {
        DesiredDomain::new(
            &spec(),
            BTreeMap::from([("privateapi.io/owner".to_string(), "ns/orders".to_string())]),
            endpoints.iter().map(|e| e.to_string()).collect(),
            "abc123defg",
            "prod",
            Some("vpce-1-abcd.execute-api.us-east-1.vpce.amazonaws.com."),
        )
    }

    fn in_sync(desired: &DesiredDomain) -> LiveDomainState {
        LiveDomainState {
            domain: LiveDomain {
                name: desired.name.clone(),
                id: "d1".into(),
                arn: "arn".into(),
                certificate_arn: Some(desired.certificate_arn.clone()),
                security_policy: Some("TLS_1_2".into()),
                policy: Some(desired.policy.to_string()),
                endpoint_types: vec!["PRIVATE".into()],
                tags: desired.tags.clone(),
            },
            associations: desired
                .endpoints
                .iter()
                .map(|e| LiveAssociation {
                    arn: format!("assoc-{e}"),
                    domain_arn: "arn".into(),
                    source: e.clone(),
                })
                .collect(),
            mappings: vec![desired.mapping.clone()],
            record: desired.record.as_ref().map(|(_, r)| r.clone()),
        }
    }

    #[test]
    fn a_domain_as_the_spec_says_needs_nothing() {
        let want = desired(&["vpce-1", "vpce-2"]);
        assert!(plan(&in_sync(&want), &want, "p").is_empty());
        assert_eq!(want.mapping.base_path, "(none)");
        assert_eq!(
            want.record.as_ref().map(|(_, r)| r.target.as_str()),
            Some("vpce-1-abcd.execute-api.us-east-1.vpce.amazonaws.com")
        );
    }

    #[test]
    fn each_difference_is_one_step_of_the_plan() {
        let want = desired(&["vpce-1", "vpce-3"]);
        let mut live = in_sync(&desired(&["vpce-1", "vpce-2"]));
        live.domain.certificate_arn =
            Some("arn:aws:acm:us-east-1:123456789012:certificate/old".into());
        live.domain.tags.clear();
        live.mappings = vec![
            LiveMapping {
                base_path: "(none)".into(),
                rest_api_id: "abc123defg".into(),
                stage: "old".into(),
            },
            LiveMapping {
                base_path: "v1".into(),
                rest_api_id: "abc123defg".into(),
                stage: "prod".into(),
            },
        ];
        live.record = None;
        let plan = plan(&live, &want, "p");
        assert!(plan.policy, "the policy names other endpoints");
        assert!(plan.certificate);
        assert!(!plan.security_policy);
        assert_eq!(plan.tags.len(), 1);
        assert_eq!(plan.associate, vec!["vpce-3".to_string()]);
        assert_eq!(
            plan.disassociate
                .iter()
                .map(|a| a.source.as_str())
                .collect::<Vec<_>>(),
            ["vpce-2"]
        );
        assert!(!plan.create_mapping);
        assert_eq!(plan.replace_mapping.map(|m| m.stage), Some("old".into()));
        assert_eq!(plan.stale_mappings.len(), 1);
        assert!(plan.upsert_record);
    }

    #[test]
    fn the_policy_as_aws_returns_it_is_the_policy_the_spec_wants() {
        let want = desired(&["vpce-1"]);
        let arn = policy_arn(
            "us-east-1",
            "123456789012",
            "orders.internal.example.com",
            "d1",
        );
        // Minified, `execute-api:/*` expanded to the domain's ARN, one-item lists as strings.
        let returned = want.policy.to_string().replace("execute-api:/*", &arn);
        assert!(policy_equivalent(Some(&returned), &want.policy, &arn));
        let other = desired(&["vpce-2"])
            .policy
            .to_string()
            .replace("execute-api:/*", &arn);
        assert!(!policy_equivalent(Some(&other), &want.policy, &arn));
        assert!(!policy_equivalent(None, &want.policy, &arn));
    }

    #[test]
    fn certificates_cover_names_as_acm_matches_them() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(covers(
            &names(&["orders.internal.example.com"]),
            "orders.internal.example.com"
        ));
        assert!(covers(
            &names(&["*.internal.example.com"]),
            "orders.internal.example.com"
        ));
        assert!(covers(
            &names(&["example.com", "*.Internal.Example.com"]),
            "ORDERS.internal.example.com."
        ));
        assert!(!covers(
            &names(&["*.internal.example.com"]),
            "internal.example.com"
        ));
        assert!(!covers(
            &names(&["*.example.com"]),
            "orders.internal.example.com"
        ));
        assert!(!covers(
            &names(&["other.internal.example.com"]),
            "orders.internal.example.com"
        ));
    }
}
