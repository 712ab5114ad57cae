//! Finding the object's REST API: by the ID in status, the one `spec.adopt` names, or by ownership
//! tags; duplicates found on the way are returned to be deleted.

use crate::error::{Error, Result};
use crate::model::LiveApi;
use crate::parts::{FIELD_ADOPT_REST_API, PartContext};

pub(super) async fn get_api(ctx: &PartContext<'_>, id: &str) -> Result<Option<LiveApi>> {
    ctx.reader.rest_api(id).await
}

/// Every REST API of the region (pages of 500).
pub(super) async fn list_all(ctx: &PartContext<'_>) -> Result<Vec<LiveApi>> {
    ctx.reader.rest_apis().await
}

pub(super) fn owned_by(ctx: &PartContext<'_>, api: &LiveApi) -> bool {
    ctx.owner
        .owns(api.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// REST APIs not owned by this object whose endpoint configuration names `vpc_endpoint_id`:
/// while there are any, deleting the endpoint would cut them off.
pub async fn other_users_of_endpoint(
    ctx: &PartContext<'_>,
    vpc_endpoint_id: &str,
) -> Result<Vec<String>> {
    Ok(list_all(ctx)
        .await?
        .into_iter()
        .filter(|api| !owned_by(ctx, api))
        .filter(|api| api.vpc_endpoint_ids.iter().any(|id| id == vpc_endpoint_id))
        .map(|api| api.id)
        .collect())
}

/// Every REST API of the region this owner owns, oldest first.
pub async fn find_owned(ctx: &PartContext<'_>) -> Result<Vec<LiveApi>> {
    let mut owned: Vec<LiveApi> = list_all(ctx)
        .await?
        .into_iter()
        .filter(|api| owned_by(ctx, api))
        .collect();
    owned.sort_by_key(|api| (api.created_epoch, api.id.clone()));
    Ok(owned)
}

/// The REST API found for this object.
#[derive(Debug, Default)]
pub(super) struct Observed {
    pub(super) live: Option<LiveApi>,
    /// Other APIs owned by this object (a duplicate from an earlier failure, or the API the
    /// operator made before `spec.adopt` named another): deleted.
    pub(super) duplicates: Vec<LiveApi>,
    /// `live` is the API named in `spec.adopt`, not yet tagged as this object's.
    pub(super) adopting: bool,
}

/// Find the API by the ID in status (if it still exists and is ours), else the one `spec.adopt`
/// names, else by ownership tags. Extra owned APIs are returned to be deleted.
pub(super) async fn observe(ctx: &PartContext<'_>) -> Result<Observed> {
    let adopt_id = ctx
        .spec
        .adopt
        .as_ref()
        .and_then(|a| a.rest_api_id.as_deref());
    if let Some(id) = ctx.status.rest_api_id.as_deref()
        && adopt_id.is_none_or(|adopt| adopt == id)
        && let Some(api) = get_api(ctx, id).await?
        && owned_by(ctx, &api)
    {
        return Ok(Observed {
            live: Some(api),
            ..Default::default()
        });
    }
    let mut owned = find_owned(ctx).await?;
    if let Some(adopt_id) = adopt_id {
        if let Some(index) = owned.iter().position(|api| api.id == adopt_id) {
            let keep = owned.remove(index);
            return Ok(Observed {
                live: Some(keep),
                duplicates: owned,
                adopting: false,
            });
        }
        let api = get_api(ctx, adopt_id).await?.ok_or_else(|| {
            Error::reference_not_found(
                FIELD_ADOPT_REST_API,
                format!("REST API {adopt_id} does not exist in {}", ctx.aws.region),
            )
        })?;
        check_adoptable(ctx, &api)?;
        return Ok(Observed {
            live: Some(api),
            duplicates: owned,
            adopting: true,
        });
    }
    if owned.is_empty() {
        return Ok(Observed::default());
    }
    let keep = owned.remove(0);
    Ok(Observed {
        live: Some(keep),
        duplicates: owned,
        adopting: false,
    })
}

fn invalid_adopt(message: String) -> Error {
    Error::InvalidSpec {
        field: FIELD_ADOPT_REST_API.to_string(),
        message,
    }
}

/// An API named in `spec.adopt` must be PRIVATE (turning a public API private would cut off its
/// clients: that is not a change to make on the way in) and nobody else's.
fn check_adoptable(ctx: &PartContext<'_>, api: &LiveApi) -> Result<()> {
    if let Some(other) = ctx
        .owner
        .claimed_by_other(api.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        return Err(invalid_adopt(format!(
            "REST API {} is managed by another PrivateApi ({other}); the operator takes over only resources nobody manages",
            api.id
        )));
    }
    if api.endpoint_types != ["PRIVATE"] {
        return Err(invalid_adopt(format!(
            "REST API {} has endpoint type {}; only PRIVATE REST APIs can be adopted",
            api.id,
            if api.endpoint_types.is_empty() {
                "none".to_string()
            } else {
                api.endpoint_types.join(", ")
            }
        )));
    }
    Ok(())
}
