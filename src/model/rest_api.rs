//! A REST API as API Gateway reports it.

use std::collections::HashMap;

use aws_sdk_apigateway::types::{EndpointConfiguration, RestApi};

/// The REST API as AWS reports it, from `GetRestApi` or an item of `GetRestApis`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveApi {
    pub id: String,
    pub description: Option<String>,
    pub created_epoch: i64,
    pub endpoint_types: Vec<String>,
    pub vpc_endpoint_ids: Vec<String>,
    pub policy: Option<String>,
    pub tags: HashMap<String, String>,
    pub root_resource_id: Option<String>,
}

impl LiveApi {
    pub(crate) fn from_parts(
        id: Option<String>,
        description: Option<String>,
        created: Option<aws_smithy_types::DateTime>,
        endpoint_configuration: Option<EndpointConfiguration>,
        policy: Option<String>,
        tags: Option<HashMap<String, String>>,
        root_resource_id: Option<String>,
    ) -> Option<Self> {
        let endpoint_configuration =
            endpoint_configuration.unwrap_or_else(|| EndpointConfiguration::builder().build());
        Some(Self {
            id: id?,
            description: description.filter(|d| !d.is_empty()),
            created_epoch: created.map(|d| d.secs()).unwrap_or_default(),
            endpoint_types: endpoint_configuration
                .types
                .unwrap_or_default()
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            vpc_endpoint_ids: endpoint_configuration.vpc_endpoint_ids.unwrap_or_default(),
            policy,
            tags: tags.unwrap_or_default(),
            root_resource_id,
        })
    }

    pub fn from_item(api: RestApi) -> Option<Self> {
        Self::from_parts(
            api.id,
            api.description,
            api.created_date,
            api.endpoint_configuration,
            api.policy,
            api.tags,
            api.root_resource_id,
        )
    }
}
