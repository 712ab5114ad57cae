//! Who owns an AWS resource, and the deterministic names and tokens that let the operator find its
//! resources again after a crash, a lost response or a rebuilt cluster.
//!
//! The identity of a `PrivateApi` in AWS is (cluster name, namespace, name): it survives a cluster
//! rebuild, where the object comes back with a new UID. The UID is recorded too, as information and
//! to tell a re-created object from the one that made the resource.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

pub const TAG_CLUSTER: &str = "privateapi.io/cluster";
pub const TAG_OWNER: &str = "privateapi.io/owner";
pub const TAG_UID: &str = "privateapi.io/uid";

/// The owner of a set of AWS resources: one `PrivateApi` object of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Owner {
    /// `<namespace>/<name>`, the value of the owner tag.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The ownership tags plus the user's `spec.tags` (which can't override ours: the CRD forbids
    /// the `privateapi.io/` prefix).
    pub fn tags(&self, user_tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut tags = user_tags.clone();
        tags.insert(TAG_CLUSTER.to_string(), self.cluster.clone());
        tags.insert(TAG_OWNER.to_string(), self.key());
        tags.insert(TAG_UID.to_string(), self.uid.clone());
        tags
    }

    /// Whether tags read from AWS say this owner (same cluster and object name) owns the resource,
    /// whatever UID they carry.
    pub fn owns<'a, I>(&self, tags: I) -> bool
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut cluster = false;
        let mut owner = false;
        for (key, value) in tags {
            match key {
                TAG_CLUSTER => cluster = value == self.cluster,
                TAG_OWNER => owner = value == self.key(),
                _ => {}
            }
        }
        cluster && owner
    }

    /// Who else claims a resource with these tags: `Some("<cluster>/<namespace>/<name>")` when
    /// they carry ownership tags that are not this owner's. An untagged resource is nobody's.
    pub fn claimed_by_other<'a, I>(&self, tags: I) -> Option<String>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut cluster = None;
        let mut owner = None;
        for (key, value) in tags {
            match key {
                TAG_CLUSTER => cluster = Some(value),
                TAG_OWNER => owner = Some(value),
                _ => {}
            }
        }
        if cluster.is_none() && owner.is_none() {
            return None;
        }
        if cluster == Some(self.cluster.as_str()) && owner == Some(self.key().as_str()) {
            return None;
        }
        Some(format!(
            "{TAG_CLUSTER}={}, {TAG_OWNER}={}",
            cluster.unwrap_or("-"),
            owner.unwrap_or("-")
        ))
    }

    /// A short, stable hash of (cluster, namespace, name).
    fn digest(&self) -> String {
        short_hash(&[&self.cluster, &self.namespace, &self.name], 10)
    }

    /// The function name: `papi-<namespace>-<name>` cut to fit, plus a hash that keeps it unique
    /// per cluster and object. Lambda allows 64 characters of `[A-Za-z0-9_-]`.
    pub fn function_name(&self) -> String {
        readable_unique_name("papi", &self.namespace, &self.name, &self.digest(), 64)
    }

    /// The managed security group's name (unique per VPC), 255 characters allowed.
    pub fn security_group_name(&self) -> String {
        readable_unique_name("papi", &self.namespace, &self.name, &self.digest(), 128)
    }

    /// The REST API's name (not unique in API Gateway: the API is found by its tags).
    pub fn rest_api_name(&self) -> String {
        format!("papi-{}-{}", self.namespace, self.name)
    }

    /// The statement ID of the invoke permission that lets this API call the function.
    pub fn permission_statement_id(&self, rest_api_id: &str) -> String {
        format!("privateapi-{}-{}", self.digest(), rest_api_id)
    }

    /// Statement IDs of this owner's invoke permissions all start with this.
    pub fn permission_statement_prefix(&self) -> String {
        format!("privateapi-{}-", self.digest())
    }

    /// The `ClientToken` of `CreateVpcEndpoint`: the same for every retry of the same create (a lost
    /// response or a crash returns the endpoint made the first time), different for a new create
    /// after the previous endpoint (`previous_endpoint_id`) was deleted behind the operator's back
    /// or the create parameters changed. EC2 allows 64 ASCII characters.
    pub fn endpoint_client_token(
        &self,
        parameters: &str,
        previous_endpoint_id: Option<&str>,
    ) -> String {
        format!(
            "papi-{}",
            short_hash(
                &[
                    &self.cluster,
                    &self.namespace,
                    &self.name,
                    &self.uid,
                    parameters,
                    previous_endpoint_id.unwrap_or("-"),
                ],
                40
            )
        )
    }
}

/// Lowercase hex of SHA-256 over the parts (separated so that ("ab","c") != ("a","bc")), cut to `len`.
pub fn short_hash(parts: &[&str], len: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..len.min(hex.len())].to_string()
}

/// `<prefix>-<namespace>-<name>-<hash>`, with namespace and name cut so the whole fits in `max`
/// characters, and any character outside `[A-Za-z0-9-]` replaced by `-`.
fn readable_unique_name(
    prefix: &str,
    namespace: &str,
    name: &str,
    hash: &str,
    max: usize,
) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let fixed = prefix.len() + hash.len() + 3; // three dashes
    let room = max.saturating_sub(fixed);
    let mut namespace = clean(namespace);
    let mut name = clean(name);
    // Give each half of the room; a short one lends the other what it does not use.
    let half = room / 2;
    if namespace.len() + name.len() > room {
        if namespace.len() > half && name.len() > room - half {
            namespace.truncate(half);
            name.truncate(room - half);
        } else if namespace.len() > half {
            namespace.truncate(room - name.len());
        } else {
            name.truncate(room - namespace.len());
        }
    }
    format!("{prefix}-{namespace}-{name}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(namespace: &str, name: &str) -> Owner {
        Owner {
            cluster: "dev".into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: "0b0e1f52-4b5a-4b62-9d3e-1a2b3c4d5e6f".into(),
        }
    }

    #[test]
    fn function_names_fit_lambda_limits_and_stay_unique() {
        let long = owner(&"n".repeat(63), &"x".repeat(253));
        let name = long.function_name();
        assert!(name.len() <= 64, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let other = owner(&"n".repeat(63), &format!("{}y", "x".repeat(252)));
        assert_ne!(name, other.function_name());
        assert_eq!(
            owner("team-a", "orders").function_name().len(),
            "papi-team-a-orders-".len() + 10
        );
        assert!(
            owner("team-a", "orders.v2")
                .function_name()
                .starts_with("papi-team-a-orders-v2-")
        );
    }

    #[test]
    fn names_do_not_depend_on_the_uid_but_on_the_cluster() {
        let a = owner("team-a", "orders");
        let mut rebuilt = a.clone();
        rebuilt.uid = "another-uid".into();
        assert_eq!(a.function_name(), rebuilt.function_name());
        let mut other_cluster = a.clone();
        other_cluster.cluster = "prod".into();
        assert_ne!(a.function_name(), other_cluster.function_name());
        assert_ne!(a.security_group_name(), other_cluster.security_group_name());
    }

    #[test]
    fn ownership_is_cluster_and_object_name() {
        let a = owner("team-a", "orders");
        let tags = a.tags(&BTreeMap::from([("team".to_string(), "a".to_string())]));
        assert_eq!(tags.len(), 4);
        assert!(a.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        let mut rebuilt = a.clone();
        rebuilt.uid = "new".into();
        assert!(rebuilt.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        let mut other = a.clone();
        other.cluster = "prod".into();
        assert!(!other.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        assert!(!a.owns([(TAG_OWNER, "team-a/orders")]));
    }

    #[test]
    fn client_tokens_are_stable_and_change_with_what_they_cover() {
        let a = owner("team-a", "orders");
        let t1 = a.endpoint_client_token("vpc-1|subnet-1", None);
        assert_eq!(t1, a.endpoint_client_token("vpc-1|subnet-1", None));
        assert!(t1.len() <= 64);
        assert_ne!(t1, a.endpoint_client_token("vpc-1|subnet-2", None));
        assert_ne!(
            t1,
            a.endpoint_client_token("vpc-1|subnet-1", Some("vpce-0123"))
        );
    }
}
