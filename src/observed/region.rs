//! What is observed in one account-region: its listings and the remembered direct reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_ec2::types::{SecurityGroup, VpcEndpoint};

use super::LiveNames;
use super::by_id::{ById, id_filter, refresh};
use super::single_flight::SingleFlight;
use crate::aws::RegionClients;
use crate::error::{AwsResultExt, Result};
use crate::model::{LiveApi, LiveFunction, LiveResource};

/// The last direct reads of what has a revision (functions, their policies) or no listing
/// (routes), reused while nothing says they changed.
#[derive(Default)]
pub(super) struct Remembered {
    /// By ARN: (RevisionId, the function as GetFunction returned it).
    pub(super) functions: HashMap<String, (String, LiveFunction)>,
    /// Function name (or ARN, as the parts ask for it) → ARN.
    function_arns: HashMap<String, String>,
    /// By function name: (RevisionId, policy).
    policies: HashMap<String, (String, Option<String>)>,
    /// By REST API ID.
    pub(super) routes: HashMap<String, Vec<LiveResource>>,
}

/// Everything observed in one account-region.
#[derive(Default)]
pub struct RegionObservations {
    rest_apis: SingleFlight<HashMap<String, LiveApi>>,
    /// Function name → RevisionId.
    functions: SingleFlight<HashMap<String, String>>,
    endpoints: tokio::sync::Mutex<ById<VpcEndpoint>>,
    groups: tokio::sync::Mutex<ById<SecurityGroup>>,
    remembered: Mutex<Remembered>,
}

impl RegionObservations {
    pub(super) fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn retain(&self, live: &LiveNames) {
        let mut remembered = self.remembered();
        remembered
            .routes
            .retain(|rest_api_id, _| live.rest_api_ids.contains(rest_api_id));
        remembered
            .functions
            .retain(|arn, _| live.function_arns.contains(arn));
        remembered
            .function_arns
            .retain(|_, arn| live.function_arns.contains(arn));
        remembered
            .policies
            .retain(|name, _| live.names_function(name));
    }

    /// The REST API `id` from the region's listing (None: not in it, i.e. gone).
    pub async fn rest_api(
        &self,
        aws: &RegionClients,
        window: Duration,
        id: &str,
    ) -> Result<Option<LiveApi>> {
        let apis = self
            .rest_apis
            .get(window, || async {
                Ok(super::direct::rest_apis(aws)
                    .await?
                    .into_iter()
                    .map(|api| (api.id.clone(), api))
                    .collect())
            })
            .await?;
        Ok(apis.get(id).cloned())
    }

    /// The RevisionId of function `name_or_arn` in the region's listing (None: not listed).
    async fn function_revision(
        &self,
        aws: &RegionClients,
        window: Duration,
        name_or_arn: &str,
    ) -> Result<Option<String>> {
        let revisions = self
            .functions
            .get(window, || async {
                let functions: std::result::Result<Vec<_>, _> = aws
                    .lambda
                    .list_functions()
                    .into_paginator()
                    .page_size(50)
                    .items()
                    .send()
                    .collect()
                    .await;
                let mut all = HashMap::new();
                for function in functions.aws("Lambda", "ListFunctions")? {
                    if let (Some(name), Some(revision)) =
                        (function.function_name(), function.revision_id())
                    {
                        all.insert(name.to_string(), revision.to_string());
                        if let Some(arn) = function.function_arn() {
                            all.insert(arn.to_string(), revision.to_string());
                        }
                    }
                }
                Ok(all)
            })
            .await?;
        Ok(revisions.get(name_or_arn).cloned())
    }

    /// The function as last read, if the listing shows the same revision.
    pub async fn unchanged_function(
        &self,
        aws: &RegionClients,
        window: Duration,
        name_or_arn: &str,
    ) -> Result<Option<LiveFunction>> {
        let Some(revision) = self.function_revision(aws, window, name_or_arn).await? else {
            return Ok(None);
        };
        let remembered = self.remembered();
        let arn = remembered
            .function_arns
            .get(name_or_arn)
            .map_or(name_or_arn, String::as_str);
        Ok(remembered
            .functions
            .get(arn)
            .filter(|(known, _)| *known == revision)
            .map(|(_, function)| function.clone()))
    }

    /// Remember a function read by GetFunction at `revision`.
    pub fn remember_function(
        &self,
        name_or_arn: &str,
        revision: Option<&str>,
        function: &LiveFunction,
    ) {
        let mut remembered = self.remembered();
        let arn = function.arn.clone();
        match revision {
            Some(revision) if !arn.is_empty() => {
                for key in [name_or_arn, function.name.as_str()] {
                    if !key.is_empty() && key != arn {
                        remembered
                            .function_arns
                            .insert(key.to_string(), arn.clone());
                    }
                }
                remembered
                    .functions
                    .insert(arn, (revision.to_string(), function.clone()));
            }
            _ => {
                let arn = remembered
                    .function_arns
                    .get(name_or_arn)
                    .cloned()
                    .unwrap_or_else(|| name_or_arn.to_string());
                remembered.functions.remove(&arn);
            }
        }
    }

    /// The function's policy as last read, if the listing shows the same revision.
    pub async fn unchanged_policy(
        &self,
        aws: &RegionClients,
        window: Duration,
        function: &str,
    ) -> Result<Option<Option<String>>> {
        let Some(revision) = self.function_revision(aws, window, function).await? else {
            return Ok(None);
        };
        Ok(self
            .remembered()
            .policies
            .get(function)
            .filter(|(known, _)| *known == revision)
            .map(|(_, policy)| policy.clone()))
    }

    /// Remember a policy read by GetPolicy (its RevisionId is the function's).
    pub fn remember_policy(&self, function: &str, revision: Option<&str>, policy: Option<&String>) {
        let mut remembered = self.remembered();
        match revision {
            Some(revision) => {
                remembered.policies.insert(
                    function.to_string(),
                    (revision.to_string(), policy.cloned()),
                );
            }
            None => {
                remembered.policies.remove(function);
            }
        }
    }

    /// The RevisionId the function's policy was last read at.
    pub fn policy_revision(&self, function: &str) -> Option<String> {
        self.remembered()
            .policies
            .get(function)
            .map(|(revision, _)| revision.clone())
    }

    /// The RevisionId the function (ARN) was last read at.
    pub fn remembered_function_revision(&self, function: &str) -> Option<String> {
        self.remembered()
            .functions
            .get(function)
            .map(|(revision, _)| revision.clone())
    }

    /// The function (ARN `function`) changed from revision `before` to `after` by a change the
    /// operator made itself to its policy: its remembered configuration still holds.
    pub fn move_function_revision(&self, function: &str, before: &str, after: &str) {
        if let Some((revision, _)) = self.remembered().functions.get_mut(function)
            && revision == before
        {
            *revision = after.to_string();
        }
    }

    /// Drop what was remembered of a deleted object's API and function.
    pub fn forget(&self, rest_api_id: Option<&str>, function_arn: Option<&str>) {
        let mut remembered = self.remembered();
        if let Some(id) = rest_api_id {
            remembered.routes.remove(id);
        }
        if let Some(arn) = function_arn {
            remembered.functions.remove(arn);
            remembered.policies.remove(arn);
            remembered.function_arns.retain(|_, target| target != arn);
        }
    }

    pub fn remembered_routes(&self, rest_api_id: &str) -> Option<Vec<LiveResource>> {
        self.remembered().routes.get(rest_api_id).cloned()
    }

    pub fn remember_routes(&self, rest_api_id: &str, routes: &[LiveResource]) {
        self.remembered()
            .routes
            .insert(rest_api_id.to_string(), routes.to_vec());
    }

    /// Include endpoint `id` in the next listing (an object's endpoint, read directly).
    pub async fn want_endpoint(&self, id: &str) {
        self.endpoints.lock().await.wanted.insert(id.to_string());
    }

    /// Include security group `id` in the next listing.
    pub async fn want_group(&self, id: &str) {
        self.groups.lock().await.wanted.insert(id.to_string());
    }

    /// The VPC endpoint `id` (None: gone).
    pub async fn vpc_endpoint(
        &self,
        aws: &RegionClients,
        window: Duration,
        id: &str,
    ) -> Result<Option<VpcEndpoint>> {
        let mut by_id = self.endpoints.lock().await;
        refresh(&mut by_id, window, id, |ids| async move {
            let endpoints: std::result::Result<Vec<_>, _> = aws
                .ec2
                .describe_vpc_endpoints()
                .filters(id_filter("vpc-endpoint-id", &ids))
                .into_paginator()
                .items()
                .send()
                .collect()
                .await;
            Ok(endpoints
                .aws("EC2", "DescribeVpcEndpoints")?
                .into_iter()
                .filter_map(|e| e.vpc_endpoint_id().map(|id| (id.to_string(), e.clone())))
                .collect())
        })
        .await
    }

    /// The security group `id` (None: gone).
    pub async fn security_group(
        &self,
        aws: &RegionClients,
        window: Duration,
        id: &str,
    ) -> Result<Option<SecurityGroup>> {
        let mut by_id = self.groups.lock().await;
        refresh(&mut by_id, window, id, |ids| async move {
            let groups: std::result::Result<Vec<_>, _> = aws
                .ec2
                .describe_security_groups()
                .filters(id_filter("group-id", &ids))
                .into_paginator()
                .items()
                .send()
                .collect()
                .await;
            Ok(groups
                .aws("EC2", "DescribeSecurityGroups")?
                .into_iter()
                .filter_map(|g| g.group_id().map(|id| (id.to_string(), g.clone())))
                .collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests;
