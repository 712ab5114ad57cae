//! Building the status from what the parts found, and writing it only when it changed (server-side
//! apply with a stable field manager).

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::crd::{InvokeUrls, PrivateApi, PrivateApiStatus};
use crate::error::{Error, Result};

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
        },
    )
}

/// Write `desired` as the object's status unless it already is. Returns the object's new
/// resourceVersion when it wrote.
pub async fn write_if_changed(
    api: &Api<PrivateApi>,
    name: &str,
    current: Option<&PrivateApiStatus>,
    desired: &PrivateApiStatus,
) -> Result<Option<String>> {
    if current == Some(desired) {
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
    Ok(Some(written.metadata.resource_version.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
