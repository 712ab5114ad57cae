//! Building the status from what the parts found, and writing it only when it changed (server-side
//! apply with a stable field manager).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::crd::{InvokeUrls, PrivateApi, PrivateApiStatus};
use crate::error::{Error, Result};
use crate::parts::endpoint::EndpointInfo;

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "privateapi-operator";

/// The field manager of the `WaitingForQuota` report, which writes only the `Ready` condition
/// (a separate manager, so its partial apply does not drop the rest of the status).
pub const QUOTA_FIELD_MANAGER: &str = "privateapi-operator-quota";

/// Every form of the invoke URL for an API reachable through `vpc_endpoint_id`.
/// `endpoint_dns_names` are the endpoint's DNS names (regional first); `private_dns` whether the
/// endpoint resolves the public `execute-api` name inside the VPC.
pub fn invoke_urls(
    region: &str,
    rest_api_id: &str,
    stage: &str,
    vpc_endpoint_id: &str,
    private_dns: bool,
    endpoint_dns_names: &[String],
) -> (String, InvokeUrls) {
    let private_dns_url =
        format!("https://{rest_api_id}.execute-api.{region}.amazonaws.com/{stage}/");
    let alias = format!(
        "https://{rest_api_id}-{vpc_endpoint_id}.execute-api.{region}.amazonaws.com/{stage}/"
    );
    let endpoint_dns = endpoint_dns_names
        .iter()
        .find(|name| name.starts_with("vpce-"))
        .map(|name| format!("https://{name}/{stage}/"));
    let url = if private_dns {
        private_dns_url.clone()
    } else {
        alias.clone()
    };
    (
        url,
        InvokeUrls {
            private_dns: private_dns.then_some(private_dns_url),
            endpoint_alias: Some(alias),
            endpoint_dns,
            custom_domain: None,
        },
    )
}

/// `status.url` and `status.urls`: what serves now, the stage status names on `rest_api_id`
/// through `endpoint`. Nothing before a stage was deployed.
pub fn set_invoke_urls(
    status: &mut PrivateApiStatus,
    region: &str,
    rest_api_id: &str,
    endpoint: &EndpointInfo,
) {
    let Some(stage) = &status.stage_name else {
        return;
    };
    let (url, urls) = invoke_urls(
        region,
        rest_api_id,
        stage,
        &endpoint.vpc_endpoint_id,
        endpoint.private_dns,
        &endpoint.dns_names,
    );
    status.url = Some(url);
    status.urls = Some(urls);
}

/// The status as the reconciler owns it: without the conditions other writers own (the
/// prober's `Reachable`). The reconciler builds on this view, compares with it and applies it, so
/// it never takes over, rolls back or is woken by what the prober writes.
pub fn operator_view(status: &PrivateApiStatus) -> PrivateApiStatus {
    let mut view = status.clone();
    view.conditions
        .retain(|c| !WRITTEN_BY_OTHERS.contains(&c.type_.as_str()));
    view
}

/// Conditions the reconciler does not write (each has its own field manager).
const WRITTEN_BY_OTHERS: [&str; 1] = [crate::conditions::REACHABLE];

/// `status.urls.customDomain`: the domain name's URL, once it maps the stage (none without
/// `spec.domain`).
pub fn set_custom_domain_url(
    status: &mut PrivateApiStatus,
    spec: Option<&crate::crd::DomainSpec>,
    domain: &Option<crate::crd::DomainStatus>,
) {
    let url = match (spec, domain) {
        (Some(spec), Some(_)) => Some(match &spec.base_path {
            Some(base_path) => format!("https://{}/{base_path}/", spec.name),
            None => format!("https://{}/", spec.name),
        }),
        _ => None,
    };
    if let Some(urls) = status.urls.as_mut() {
        urls.custom_domain = url;
    }
}

/// A digest of a status as the reconciler owns it ([`operator_view`]), to tell whether two copies
/// of it are the same without keeping whole statuses (kilobytes each) per object.
pub fn digest(status: Option<&PrivateApiStatus>) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut hasher = DefaultHasher::new();
    let view = status.map(operator_view);
    hasher.write(&serde_json::to_vec(&view).unwrap_or_default());
    hasher.finish()
}

/// What the operator last wrote to each object's status (its digest), by `namespace/name`.
///
/// Reconciles build the next status on the previous one (`adopted`, `retiring`, the
/// `lastTransitionTime`s). They start from the controller's store, which follows a watch: when
/// the watch lags behind the operator's own last write, the store's copy is older than that write,
/// and a status built on it would roll the write back. A copy whose status is not the last written
/// one is therefore read again from the API server first ([`LastWrites::is_behind`]).
#[derive(Default)]
pub struct LastWrites(Mutex<HashMap<String, u64>>);

impl LastWrites {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember the status of `object` as returned by the API server after a write (or read
    /// fresh): the newest the operator knows of.
    pub fn record(&self, object: &PrivateApi) {
        self.map()
            .insert(key_of(object), digest(object.status.as_ref()));
    }

    /// Whether `copy`'s status is not the one the operator last wrote (or read fresh): the copy
    /// may be older than that write, or someone else wrote meanwhile. Either way, read it again.
    pub fn is_behind(&self, copy: &PrivateApi) -> bool {
        self.map()
            .get(&key_of(copy))
            .is_some_and(|last| *last != digest(copy.status.as_ref()))
    }

    pub fn forget(&self, key: &str) {
        self.map().remove(key);
    }

    /// Keep only the objects for which `live` holds.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.map().retain(|key, _| live(key));
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key_of(object: &PrivateApi) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// Write `desired` (built on [`operator_view`]) as the object's status unless `current` (what the
/// object has) already is it.
/// Returns the object's new resourceVersion when it wrote; the write is recorded in `writes`.
pub async fn write_if_changed(
    api: &Api<PrivateApi>,
    name: &str,
    current: Option<&PrivateApiStatus>,
    desired: &PrivateApiStatus,
    writes: &LastWrites,
) -> Result<Option<String>> {
    if current.map(operator_view).as_ref() == Some(desired) {
        return Ok(None);
    }
    let patch = json!({
        "apiVersion": "privateapi.io/v1alpha1",
        "kind": "PrivateApi",
        "status": desired,
    });
    let written = api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Kube)?;
    writes.record(&written);
    Ok(Some(written.metadata.resource_version.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::{self, PartState};

    fn with_condition(mut status: PrivateApiStatus, type_: &str, ready: bool) -> PrivateApiStatus {
        let now = k8s_openapi::jiff::Timestamp::from_second(100).expect("time");
        let state = if ready {
            PartState::ready("Answered", "ok")
        } else {
            PartState::not_ready("ConnectTimeout", "no")
        };
        conditions::set_condition(&mut status.conditions, type_, &state, Some(1), now);
        status
    }

    #[test]
    fn the_reconciler_neither_sees_nor_compares_the_probers_condition() {
        let ready = with_condition(PrivateApiStatus::default(), conditions::READY, true);
        let probed = with_condition(ready.clone(), conditions::REACHABLE, true);
        assert_eq!(operator_view(&probed), ready);
        assert_eq!(digest(Some(&probed)), digest(Some(&ready)));
        let unreachable = with_condition(ready.clone(), conditions::REACHABLE, false);
        assert_eq!(digest(Some(&unreachable)), digest(Some(&probed)));
        // Its own conditions still count.
        let not_ready = with_condition(PrivateApiStatus::default(), conditions::READY, false);
        assert_ne!(digest(Some(&not_ready)), digest(Some(&ready)));
    }

    #[test]
    fn urls_follow_private_dns() {
        let names = vec![
            "vpce-0123456789abcdef0-abcd1234.execute-api.us-east-1.vpce.amazonaws.com".to_string(),
            "vpce-0123456789abcdef0-abcd1234-us-east-1a.execute-api.us-east-1.vpce.amazonaws.com"
                .to_string(),
        ];
        let (url, urls) = invoke_urls(
            "us-east-1",
            "abc123defg",
            "prod",
            "vpce-0123456789abcdef0",
            true,
            &names,
        );
        assert_eq!(
            url,
            "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/"
        );
        assert_eq!(
            urls.endpoint_alias.as_deref(),
            Some(
                "https://abc123defg-vpce-0123456789abcdef0.execute-api.us-east-1.amazonaws.com/prod/"
            )
        );
        assert_eq!(
            urls.endpoint_dns.as_deref(),
            Some(
                "https://vpce-0123456789abcdef0-abcd1234.execute-api.us-east-1.vpce.amazonaws.com/prod/"
            )
        );
        let (url, urls) = invoke_urls(
            "us-east-1",
            "abc123defg",
            "prod",
            "vpce-0123456789abcdef0",
            false,
            &[],
        );
        assert_eq!(
            url,
            "https://abc123defg-vpce-0123456789abcdef0.execute-api.us-east-1.amazonaws.com/prod/"
        );
        assert_eq!(urls.private_dns, None);
        assert_eq!(urls.endpoint_dns, None);
    }
}
