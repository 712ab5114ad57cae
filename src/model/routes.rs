//! An API's routes as API Gateway reports them (`GetResources` with its methods embedded).

use std::collections::BTreeMap;

/// A method's integration as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveIntegration {
    pub type_: String,
    pub http_method: String,
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveMethod {
    pub authorization_type: String,
    /// None when the method has no integration.
    pub integration: Option<LiveIntegration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveResource {
    pub id: String,
    pub path: String,
    pub methods: BTreeMap<String, LiveMethod>,
}
