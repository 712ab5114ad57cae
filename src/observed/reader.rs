//! The reader handed to each part: every read of live AWS state a part makes goes through it, so
//! a part asks for what it needs and never branches on where the answer comes from.
//!
//! - [`Reader::direct`]: straight from AWS, nothing remembered (deletion, tools, tests that use
//!   one part alone);
//! - [`Reader::remembering`]: straight from AWS, and what is found is remembered for the periodic
//!   checks (a reconcile that may change things);
//! - [`Reader::shared`]: from the account-region's shared listings and the remembered reads (a
//!   periodic check of an object in sync, see the module above).

use std::time::Duration;

use aws_sdk_ec2::types::{SecurityGroup, VpcEndpoint};

use super::RegionObservations;
use super::direct;
use crate::aws::RegionClients;
use crate::error::Result;
use crate::model::{
    LiveApi, LiveAssociation, LiveCertificate, LiveDomain, LiveFunction, LiveHostedZone,
    LiveMapping, LiveRecord, LiveResource,
};

/// Where a part's reads go. Cheap to copy: it borrows the clients and the observations.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    aws: &'a RegionClients,
    source: Source<'a>,
}

#[derive(Clone, Copy)]
enum Source<'a> {
    Direct,
    Remembering {
        region: &'a RegionObservations,
    },
    Shared {
        region: &'a RegionObservations,
        window: Duration,
        /// Read routes and policies directly even so (the check's deep turn).
        deep: bool,
    },
}

impl<'a> Reader<'a> {
    /// Every read straight from AWS; nothing remembered.
    pub fn direct(aws: &'a RegionClients) -> Self {
        Self {
            aws,
            source: Source::Direct,
        }
    }

    /// Every read straight from AWS; what is found is remembered in `region` for the checks.
    pub fn remembering(aws: &'a RegionClients, region: &'a RegionObservations) -> Self {
        Self {
            aws,
            source: Source::Remembering { region },
        }
    }

    /// Reads served by `region`'s listings (at most `window` old) and remembered reads; `deep`
    /// reads what has no listing (routes, policies) directly.
    pub fn shared(
        aws: &'a RegionClients,
        region: &'a RegionObservations,
        window: Duration,
        deep: bool,
    ) -> Self {
        Self {
            aws,
            source: Source::Shared {
                region,
                window,
                deep,
            },
        }
    }

    /// Where direct reads are remembered (every source but `Direct`).
    fn region(&self) -> Option<&'a RegionObservations> {
        match self.source {
            Source::Direct => None,
            Source::Remembering { region } | Source::Shared { region, .. } => Some(region),
        }
    }

    /// A shared check's observations, unless this is its deep turn.
    fn shallow(&self) -> Option<(&'a RegionObservations, Duration)> {
        match self.source {
            Source::Shared {
                region,
                window,
                deep: false,
            } => Some((region, window)),
            _ => None,
        }
    }

    /// The REST API `id` (None: it does not exist).
    pub async fn rest_api(&self, id: &str) -> Result<Option<LiveApi>> {
        match self.source {
            Source::Shared { region, window, .. } => region.rest_api(self.aws, window, id).await,
            _ => direct::rest_api(self.aws, id).await,
        }
    }

    /// Every REST API of the region, always listed afresh: it is needed only to find what the
    /// ID in status no longer finds, and that is never decided on an old listing.
    pub async fn rest_apis(&self) -> Result<Vec<LiveApi>> {
        direct::rest_apis(self.aws).await
    }

    /// The function by name or ARN (None: it does not exist). A shared check reuses the last
    /// read while the function's RevisionId in the listing is the one it was read at.
    pub async fn function(&self, id: &str) -> Result<Option<LiveFunction>> {
        if let Some((region, window)) = self.shallow()
            && let Some(unchanged) = region.unchanged_function(self.aws, window, id).await?
        {
            return Ok(Some(unchanged));
        }
        let Some(read) = direct::function(self.aws, id).await? else {
            return Ok(None);
        };
        if let Some(region) = self.region() {
            region.remember_function(id, read.revision.as_deref(), &read.function);
        }
        Ok(Some(read.function))
    }

    /// The function's resource policy (None: it has none). A shared check reuses the last read
    /// while the function's RevisionId is the one the policy was read at.
    pub async fn function_policy(&self, function: &str) -> Result<Option<String>> {
        if let Some((region, window)) = self.shallow()
            && let Some(unchanged) = region.unchanged_policy(self.aws, window, function).await?
        {
            return Ok(unchanged);
        }
        let read = direct::function_policy(self.aws, function).await?;
        if let Some(region) = self.region() {
            // No policy: no revision to check it against next time (read again).
            region.remember_policy(function, read.revision.as_deref(), read.policy.as_ref());
        }
        Ok(read.policy)
    }

    /// The operator changed the function's policy: that gave the function a new RevisionId.
    /// Read the policy once more (it also confirms the change) so that the checks know the
    /// function's current revision and need neither GetFunction nor GetPolicy.
    pub async fn function_policy_changed(&self, function: &str) -> Result<()> {
        let Some(region) = self.region() else {
            return Ok(());
        };
        // No policy before (a new function): the revision the function was read at.
        let before = region
            .policy_revision(function)
            .or_else(|| region.remembered_function_revision(function));
        let read = direct::function_policy(self.aws, function).await?;
        region.remember_policy(function, read.revision.as_deref(), read.policy.as_ref());
        if let (Some(before), Some(after)) = (before, read.revision) {
            // Only if the function was read at the revision the policy was read at, before the
            // change (nothing else changed it in between).
            region.move_function_revision(function, &before, &after);
        }
        Ok(())
    }

    /// The API's resources, methods and integrations. Routes have no listing and no revision:
    /// a shared check reuses the last read, except at its deep turns.
    pub async fn routes(&self, rest_api_id: &str) -> Result<Vec<LiveResource>> {
        if let Some((region, _)) = self.shallow()
            && let Some(remembered) = region.remembered_routes(rest_api_id)
        {
            return Ok(remembered);
        }
        direct::routes(self.aws, rest_api_id).await
    }

    /// The API's routes are now `routes` (read and found right, or just made so): what the
    /// checks compare against.
    pub fn routes_are(&self, rest_api_id: &str, routes: &[LiveResource]) {
        if let Some(region) = self.region() {
            region.remember_routes(rest_api_id, routes);
        }
    }

    /// The VPC endpoint `id` (None: it does not exist). Endpoints read while remembering are
    /// listed together at the checks.
    pub async fn vpc_endpoint(&self, id: &str) -> Result<Option<VpcEndpoint>> {
        match self.source {
            Source::Direct => direct::vpc_endpoint(self.aws, id).await,
            Source::Remembering { region } => {
                region.want_endpoint(id).await;
                direct::vpc_endpoint(self.aws, id).await
            }
            Source::Shared { region, window, .. } => {
                region.vpc_endpoint(self.aws, window, id).await
            }
        }
    }

    /// The security group `id` (None: it does not exist). Groups read while remembering are
    /// listed together at the checks.
    pub async fn security_group(&self, id: &str) -> Result<Option<SecurityGroup>> {
        match self.source {
            Source::Direct => direct::security_group(self.aws, id).await,
            Source::Remembering { region } => {
                region.want_group(id).await;
                direct::security_group(self.aws, id).await
            }
            Source::Shared { region, window, .. } => {
                region.security_group(self.aws, window, id).await
            }
        }
    }

    // Private custom domain names. Read directly in every mode: a domain's parts have no shared
    // listing yet (one listing per window, as for REST APIs, is the next step).

    /// The private domain name `name` with ID `id` (None: it does not exist).
    pub async fn domain(&self, name: &str, id: &str) -> Result<Option<LiveDomain>> {
        super::domains::domain(self.aws, name, id).await
    }

    /// Every private domain name of the account-region, to find one the status does not name.
    pub async fn domains(&self) -> Result<Vec<LiveDomain>> {
        super::domains::domains(self.aws).await
    }

    /// The access associations of the account-region's domain names.
    pub async fn domain_associations(&self) -> Result<Vec<LiveAssociation>> {
        super::domains::associations(self.aws).await
    }

    /// The base path mappings of a private domain name.
    pub async fn base_path_mappings(&self, name: &str, id: &str) -> Result<Vec<LiveMapping>> {
        super::domains::mappings(self.aws, name, id).await
    }

    /// The ACM certificate `arn` (None: it does not exist).
    pub async fn certificate(&self, arn: &str) -> Result<Option<LiveCertificate>> {
        super::domains::certificate(self.aws, arn).await
    }

    /// The Route 53 hosted zone `id` (None: it does not exist).
    pub async fn hosted_zone(&self, id: &str) -> Result<Option<LiveHostedZone>> {
        super::domains::hosted_zone(self.aws, id).await
    }

    /// The CNAME `name` in the hosted zone `zone` (None: there is none).
    pub async fn cname(&self, zone: &str, name: &str) -> Result<Option<LiveRecord>> {
        super::domains::cname(self.aws, zone, name).await
    }
}
