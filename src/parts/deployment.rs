//! The deployment and the stage. A REST API serves what was deployed, not what it is now: a policy
//! or integration change takes effect only with a new deployment. So the operator records, in each
//! deployment's description, a fingerprint of everything the deployment captured (policy, endpoint
//! configuration, routes, integration), and deploys again exactly when the stage's deployment
//! carries another fingerprint (or none: deployed by someone else).

use std::collections::HashMap;
use std::sync::Mutex;

use super::api::{ApiInfo, DesiredApi};
use super::routes::integration_uri;
use super::{Change, Outcome, PartContext};
use crate::aws::apigateway_without_retries;
use crate::conditions::{PartState, reason};
use crate::error::{AwsResultExt, Error, NotFoundExt, Result};
use crate::identity::short_hash;
use crate::policy;

const SERVICE: &str = "APIGateway";
const FINGERPRINT_PREFIX: &str = "privateapi.io fingerprint=";

/// The fingerprint of what a deployment of this API must capture.
pub fn fingerprint(desired: &DesiredApi, integration_uri: &str) -> String {
    let canonical_policy = policy::canonical(&desired.policy, "").to_string();
    let ids: Vec<&str> = desired
        .vpc_endpoint_ids
        .iter()
        .map(String::as_str)
        .collect();
    short_hash(
        &[
            "v1",
            "PRIVATE",
            &canonical_policy,
            &ids.join(","),
            "ANY /|ANY /{proxy+}|AWS_PROXY POST",
            integration_uri,
        ],
        32,
    )
}

/// The fingerprint of what a deployment must capture now: the API as the spec wants it with
/// `vpc_endpoint_id`, its routes integrated with `function_arn`.
pub fn desired_fingerprint(
    ctx: &PartContext<'_>,
    vpc_endpoint_id: &str,
    function_arn: &str,
) -> String {
    let desired = DesiredApi::new(ctx, vpc_endpoint_id);
    let uri = integration_uri(&ctx.aws.region, function_arn);
    fingerprint(&desired, &uri)
}

/// The fingerprint recorded in a deployment description, if the operator made it.
pub fn fingerprint_in(description: Option<&str>) -> Option<&str> {
    description?.strip_prefix(FINGERPRINT_PREFIX)
}

/// Deployments never change: their fingerprints are remembered for the life of the process, so a
/// steady-state reconcile needs only `GetStages`.
#[derive(Default)]
pub struct FingerprintCache {
    by_deployment: Mutex<HashMap<(String, String), Option<String>>>,
}

impl FingerprintCache {
    fn get(&self, rest_api_id: &str, deployment_id: &str) -> Option<Option<String>> {
        self.by_deployment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(rest_api_id.to_string(), deployment_id.to_string()))
            .cloned()
    }
    /// Keep only the deployments of the REST APIs for which `live` holds.
    pub fn retain_apis(&self, live: impl Fn(&str) -> bool) {
        self.by_deployment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(rest_api_id, _), _| live(rest_api_id));
    }

    /// How many deployments are remembered.
    pub fn len(&self) -> usize {
        self.by_deployment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(&self, rest_api_id: &str, deployment_id: &str, fingerprint: Option<String>) {
        self.by_deployment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (rest_api_id.to_string(), deployment_id.to_string()),
                fingerprint,
            );
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentInfo {
    pub deployment_id: String,
    pub stage_name: String,
    /// Other stages of the API (an earlier `stageName`): `status.url` may still name one, so they
    /// go only once the status names this stage ([`delete_old_stages`]).
    pub old_stages: Vec<String>,
}

/// What to do with the stages, given the stages (name → deployment) and the fingerprint the
/// desired stage's deployment carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    pub deploy: bool,
    pub delete_stages: Vec<String>,
}

pub fn plan(
    stage_names: &[String],
    desired_stage: &str,
    serving: Option<&str>,
    desired_fingerprint: &str,
) -> StagePlan {
    StagePlan {
        deploy: serving != Some(desired_fingerprint),
        delete_stages: stage_names
            .iter()
            .filter(|name| name.as_str() != desired_stage)
            .cloned()
            .collect(),
    }
}

async fn deployment_fingerprint(
    ctx: &PartContext<'_>,
    cache: &FingerprintCache,
    rest_api_id: &str,
    deployment_id: &str,
) -> Result<Option<String>> {
    if let Some(known) = cache.get(rest_api_id, deployment_id) {
        return Ok(known);
    }
    let deployment = ctx
        .aws
        .apigateway
        .get_deployment()
        .rest_api_id(rest_api_id)
        .deployment_id(deployment_id)
        .send()
        .await
        .aws(SERVICE, "GetDeployment")
        .or_not_found()?;
    let found = deployment
        .as_ref()
        .and_then(|d| fingerprint_in(d.description.as_deref()))
        .map(str::to_string);
    if deployment.is_some() {
        cache.put(rest_api_id, deployment_id, found.clone());
    }
    Ok(found)
}

/// `adopt_current`: the REST API was adopted from `spec.adopt` in this reconcile and nothing about
/// it had to change (policy, endpoint configuration, routes): the deployment its stage serves (made
/// by whoever built the stack, so without a fingerprint) is taken to serve what the spec asks for,
/// and is stamped with the fingerprint instead of being replaced. The stage keeps serving it, with
/// no gap, until a change requires a new deployment.
pub async fn reconcile(
    ctx: &PartContext<'_>,
    cache: &FingerprintCache,
    api: &ApiInfo,
    desired_fingerprint: &str,
    adopt_current: bool,
) -> Result<Outcome<DeploymentInfo>> {
    let rest_api_id = api.rest_api_id.as_str();
    let stage_name = ctx.spec.stage_name.as_str();
    let client = &ctx.aws.apigateway;
    let stages = client
        .get_stages()
        .rest_api_id(rest_api_id)
        .send()
        .await
        .aws(SERVICE, "GetStages")?
        .item
        .unwrap_or_default();
    let current_deployment = stages
        .iter()
        .find(|s| s.stage_name.as_deref() == Some(stage_name))
        .and_then(|s| s.deployment_id.clone());
    let serving = match current_deployment.as_deref() {
        Some(id) => deployment_fingerprint(ctx, cache, rest_api_id, id).await?,
        None => None,
    };
    let names: Vec<String> = stages.iter().filter_map(|s| s.stage_name.clone()).collect();
    let plan = plan(&names, stage_name, serving.as_deref(), desired_fingerprint);
    let mut changes = Vec::new();
    let deployment_id = if let (true, true, None, Some(current)) = (
        plan.deploy,
        adopt_current,
        serving.as_deref(),
        current_deployment.as_deref(),
    ) {
        client
            .update_deployment()
            .rest_api_id(rest_api_id)
            .deployment_id(current)
            .patch_operations(
                aws_sdk_apigateway::types::PatchOperation::builder()
                    .op(aws_sdk_apigateway::types::Op::Replace)
                    .path("/description")
                    .value(format!("{FINGERPRINT_PREFIX}{desired_fingerprint}"))
                    .build(),
            )
            .send()
            .await
            .aws(SERVICE, "UpdateDeployment")?;
        cache.put(rest_api_id, current, Some(desired_fingerprint.to_string()));
        changes.push(Change::new(
            "Adopted",
            format!("deployment {current} of REST API {rest_api_id}"),
            format!(
                "stage {stage_name} keeps serving it: the adopted API already matched the spec"
            ),
        ));
        current.to_string()
    } else if plan.deploy {
        // No SDK retries: a lost response must not make a second deployment (harmless, but each
        // counts against the 1-per-5-s quota); the next reconcile sees the stage's deployment.
        let created = client
            .create_deployment()
            .rest_api_id(rest_api_id)
            .stage_name(stage_name)
            .description(format!("{FINGERPRINT_PREFIX}{desired_fingerprint}"))
            .customize()
            .config_override(apigateway_without_retries())
            .send()
            .await
            .aws(SERVICE, "CreateDeployment")?;
        let id = created.id.ok_or_else(|| Error::Unexpected {
            operation: "CreateDeployment",
            message: "no id in the answer".into(),
        })?;
        cache.put(rest_api_id, &id, Some(desired_fingerprint.to_string()));
        changes.push(Change::new(
            "Deployed",
            format!("deployment {id} of REST API {rest_api_id}"),
            match current_deployment.as_deref() {
                Some(old) => format!("stage {stage_name}: the API changed since deployment {old}"),
                None => format!("stage {stage_name} created"),
            },
        ));
        id
    } else {
        current_deployment.clone().unwrap_or_default()
    };
    // With old stages left (they still serve theirs), pruning waits for them to go.
    if plan.deploy && plan.delete_stages.is_empty() {
        prune_deployments(ctx, rest_api_id, &deployment_id, &mut changes).await?;
    }
    Ok(Outcome {
        value: DeploymentInfo {
            deployment_id: deployment_id.clone(),
            stage_name: stage_name.to_string(),
            old_stages: plan.delete_stages,
        },
        state: PartState::ready(
            reason::DEPLOYED,
            format!(
                "stage {stage_name} serves deployment {deployment_id} of the current API and policy"
            ),
        ),
        changes,
    })
}

/// Delete the stages of an earlier `stageName` (`deployed.old_stages`), then the deployments they
/// served. Called once `status.url` names the current stage.
pub async fn delete_old_stages(
    ctx: &PartContext<'_>,
    rest_api_id: &str,
    deployed: &DeploymentInfo,
) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    for old_stage in &deployed.old_stages {
        ctx.aws
            .apigateway
            .delete_stage()
            .rest_api_id(rest_api_id)
            .stage_name(old_stage)
            .send()
            .await
            .aws(SERVICE, "DeleteStage")
            .or_not_found()?;
        changes.push(Change::new(
            "Deleted",
            format!("stage {old_stage} of REST API {rest_api_id}"),
            format!("the stage is now {}", deployed.stage_name),
        ));
    }
    prune_deployments(ctx, rest_api_id, &deployed.deployment_id, &mut changes).await?;
    Ok(changes)
}

/// Delete deployments no stage uses any more, so they do not pile up with every change. Called
/// when no other stage is left: the one stage serves `keep`.
async fn prune_deployments(
    ctx: &PartContext<'_>,
    rest_api_id: &str,
    keep: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let client = &ctx.aws.apigateway;
    let deployments = client
        .get_deployments()
        .rest_api_id(rest_api_id)
        .limit(500)
        .send()
        .await
        .aws(SERVICE, "GetDeployments")?
        .items
        .unwrap_or_default();
    for deployment in deployments {
        let Some(id) = deployment.id else { continue };
        if id == keep {
            continue;
        }
        client
            .delete_deployment()
            .rest_api_id(rest_api_id)
            .deployment_id(&id)
            .send()
            .await
            .aws(SERVICE, "DeleteDeployment")
            .or_not_found()?;
        changes.push(Change::new(
            "Deleted",
            format!("deployment {id} of REST API {rest_api_id}"),
            "no stage serves it",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn desired(ids: &[&str]) -> DesiredApi {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        DesiredApi {
            description: Some("ignored by the fingerprint".into()),
            policy: policy::desired_policy(&ids),
            vpc_endpoint_ids: ids.into_iter().collect(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn fingerprint_changes_with_what_a_deployment_captures_only() {
        let base = fingerprint(&desired(&["vpce-1"]), "uri-1");
        assert_eq!(base, fingerprint(&desired(&["vpce-1"]), "uri-1"));
        let mut other_description = desired(&["vpce-1"]);
        other_description.description = None;
        other_description.tags.insert("team".into(), "a".into());
        assert_eq!(base, fingerprint(&other_description, "uri-1"));
        assert_ne!(base, fingerprint(&desired(&["vpce-1", "vpce-2"]), "uri-1"));
        assert_ne!(base, fingerprint(&desired(&["vpce-1"]), "uri-2"));
    }

    #[test]
    fn fingerprint_round_trips_through_the_description() {
        let description = format!("{FINGERPRINT_PREFIX}abc");
        assert_eq!(fingerprint_in(Some(&description)), Some("abc"));
        assert_eq!(fingerprint_in(Some("deployed from the console")), None);
        assert_eq!(fingerprint_in(None), None);
    }

    #[test]
    fn deploys_only_when_the_stage_serves_something_else() {
        let names = vec!["prod".to_string()];
        assert!(!plan(&names, "prod", Some("fp"), "fp").deploy);
        assert!(plan(&names, "prod", Some("old"), "fp").deploy);
        assert!(plan(&names, "prod", None, "fp").deploy);
        assert!(plan(&[], "prod", None, "fp").deploy);
        let renamed = plan(&names, "live", None, "fp");
        assert!(renamed.deploy);
        assert_eq!(renamed.delete_stages, vec!["prod".to_string()]);
    }
}
