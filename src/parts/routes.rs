//! The API's routes: `ANY /` and `ANY /{proxy+}`, each with an `AWS_PROXY` integration to the
//! backend function. Anything else on the API (added in the console) is removed.

use std::collections::BTreeMap;

use aws_sdk_apigateway::types::IntegrationType;

use super::api::ApiInfo;
use super::{Change, Outcome, PartContext};
use crate::conditions::{PartState, reason};
use crate::error::{AwsResultExt, Error, NotFoundExt, Result};
pub use crate::model::{LiveIntegration, LiveMethod, LiveResource};

const SERVICE: &str = "APIGateway";
pub const PROXY_PATH_PART: &str = "{proxy+}";
pub const METHOD: &str = "ANY";

/// The integration URI that makes API Gateway invoke `function_arn`.
pub fn integration_uri(region: &str, function_arn: &str) -> String {
    format!(
        "arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    )
}

/// One step towards the desired routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    CreateProxyResource,
    /// (Re)create the method on the resource at `path` (authorization NONE).
    PutMethod {
        path: String,
    },
    /// (Re)create the method's integration.
    PutIntegration {
        path: String,
    },
    DeleteMethod {
        resource_id: String,
        path: String,
        method: String,
    },
    DeleteResource {
        resource_id: String,
        path: String,
    },
}

/// What to do so that exactly `ANY /` and `ANY /{proxy+}` exist, each integrated with `uri`.
pub fn diff(live: &[LiveResource], uri: &str) -> Vec<RouteAction> {
    let desired_integration = LiveIntegration {
        type_: "AWS_PROXY".into(),
        http_method: "POST".into(),
        uri: uri.to_string(),
    };
    let proxy_path = format!("/{PROXY_PATH_PART}");
    let mut actions = Vec::new();
    if !live.iter().any(|r| r.path == proxy_path) {
        actions.push(RouteAction::CreateProxyResource);
    }
    for path in ["/", proxy_path.as_str()] {
        let method = live
            .iter()
            .find(|r| r.path == path)
            .and_then(|r| r.methods.get(METHOD));
        match method {
            Some(m) if m.authorization_type == "NONE" => {
                if m.integration.as_ref() != Some(&desired_integration) {
                    actions.push(RouteAction::PutIntegration {
                        path: path.to_string(),
                    });
                }
            }
            // Missing, or with an authorizer someone added: put it back as it should be.
            _ => {
                actions.push(RouteAction::PutMethod {
                    path: path.to_string(),
                });
                actions.push(RouteAction::PutIntegration {
                    path: path.to_string(),
                });
            }
        }
    }
    // Everything else is drift. Deleting a resource deletes its children and methods, so only the
    // top-most extra resource of a branch is deleted.
    let mut extra_resources: Vec<&LiveResource> = live
        .iter()
        .filter(|r| r.path != "/" && r.path != proxy_path)
        .collect();
    extra_resources.sort_by_key(|r| r.path.len());
    let mut deleted: Vec<&str> = Vec::new();
    for resource in extra_resources {
        if deleted
            .iter()
            .any(|d| resource.path.starts_with(&format!("{d}/")))
        {
            continue;
        }
        deleted.push(&resource.path);
        actions.push(RouteAction::DeleteResource {
            resource_id: resource.id.clone(),
            path: resource.path.clone(),
        });
    }
    for resource in live
        .iter()
        .filter(|r| r.path == "/" || r.path == proxy_path)
    {
        for method in resource.methods.keys().filter(|m| m.as_str() != METHOD) {
            actions.push(RouteAction::DeleteMethod {
                resource_id: resource.id.clone(),
                path: resource.path.clone(),
                method: method.clone(),
            });
        }
    }
    actions
}

pub async fn reconcile(
    ctx: &PartContext<'_>,
    api: &ApiInfo,
    function_arn: &str,
) -> Result<Outcome<()>> {
    let rest_api_id = api.rest_api_id.as_str();
    let uri = integration_uri(&ctx.aws.region, function_arn);
    let mut live = ctx.reader.routes(rest_api_id).await?;
    let actions = diff(&live, &uri);
    if actions.is_empty() {
        // Routes that needed nothing, as read now: what periodic checks compare against.
        ctx.reader.routes_are(rest_api_id, &live);
    }
    let mut changes = Vec::new();
    let client = &ctx.aws.apigateway;
    for action in actions {
        match action {
            RouteAction::CreateProxyResource => {
                let root_id = live
                    .iter()
                    .find(|r| r.path == "/")
                    .map(|r| r.id.clone())
                    .or_else(|| api.root_resource_id.clone())
                    .ok_or_else(|| Error::Unexpected {
                        operation: "GetResources",
                        message: format!("REST API {rest_api_id} has no root resource"),
                    })?;
                let created = client
                    .create_resource()
                    .rest_api_id(rest_api_id)
                    .parent_id(root_id)
                    .path_part(PROXY_PATH_PART)
                    .send()
                    .await
                    .aws(SERVICE, "CreateResource")?;
                let id = created.id.ok_or_else(|| Error::Unexpected {
                    operation: "CreateResource",
                    message: "no id in the answer".into(),
                })?;
                live.push(LiveResource {
                    id,
                    path: format!("/{PROXY_PATH_PART}"),
                    methods: BTreeMap::new(),
                });
                changes.push(Change::new(
                    "Created",
                    format!("resource /{PROXY_PATH_PART} of REST API {rest_api_id}"),
                    "",
                ));
            }
            RouteAction::PutMethod { path } => {
                let resource_id = resource_id(&live, &path)?;
                client
                    .put_method()
                    .rest_api_id(rest_api_id)
                    .resource_id(resource_id)
                    .http_method(METHOD)
                    .authorization_type("NONE")
                    .send()
                    .await
                    .aws(SERVICE, "PutMethod")?;
                changes.push(Change::new(
                    "Updated",
                    format!("method {METHOD} {path} of REST API {rest_api_id}"),
                    "put method",
                ));
            }
            RouteAction::PutIntegration { path } => {
                let resource_id = resource_id(&live, &path)?;
                client
                    .put_integration()
                    .rest_api_id(rest_api_id)
                    .resource_id(resource_id)
                    .http_method(METHOD)
                    .r#type(IntegrationType::AwsProxy)
                    .integration_http_method("POST")
                    .uri(&uri)
                    .send()
                    .await
                    .aws(SERVICE, "PutIntegration")?;
                changes.push(Change::new(
                    "Updated",
                    format!("integration of {METHOD} {path} of REST API {rest_api_id}"),
                    format!("AWS_PROXY to {function_arn}"),
                ));
            }
            RouteAction::DeleteMethod {
                resource_id,
                path,
                method,
            } => {
                client
                    .delete_method()
                    .rest_api_id(rest_api_id)
                    .resource_id(resource_id)
                    .http_method(&method)
                    .send()
                    .await
                    .aws(SERVICE, "DeleteMethod")
                    .or_not_found()?;
                changes.push(Change::new(
                    "Deleted",
                    format!("method {method} {path} of REST API {rest_api_id}"),
                    "not part of the spec",
                ));
            }
            RouteAction::DeleteResource { resource_id, path } => {
                client
                    .delete_resource()
                    .rest_api_id(rest_api_id)
                    .resource_id(resource_id)
                    .send()
                    .await
                    .aws(SERVICE, "DeleteResource")
                    .or_not_found()?;
                changes.push(Change::new(
                    "Deleted",
                    format!("resource {path} of REST API {rest_api_id}"),
                    "not part of the spec",
                ));
            }
        }
    }
    if !changes.is_empty() {
        // Every action succeeded: the routes are now the desired ones, on these resources.
        ctx.reader
            .routes_are(rest_api_id, &routes_after(&live, &uri));
    }
    Ok(Outcome {
        value: (),
        state: PartState::ready(
            reason::AVAILABLE,
            "ANY / and ANY /{proxy+} integrated with the function",
        ),
        changes,
    })
}

/// The routes once every action of `diff(live, uri)` succeeded: `/` and `/{proxy+}` (their
/// resources as in `live`, the proxy one included once created), each with exactly `ANY`,
/// authorization NONE, integrated with `uri`.
pub fn routes_after(live: &[LiveResource], uri: &str) -> Vec<LiveResource> {
    let proxy_path = format!("/{PROXY_PATH_PART}");
    live.iter()
        .filter(|r| r.path == "/" || r.path == proxy_path)
        .map(|r| LiveResource {
            id: r.id.clone(),
            path: r.path.clone(),
            methods: BTreeMap::from([(
                METHOD.to_string(),
                LiveMethod {
                    authorization_type: "NONE".into(),
                    integration: Some(LiveIntegration {
                        type_: "AWS_PROXY".into(),
                        http_method: "POST".into(),
                        uri: uri.to_string(),
                    }),
                },
            )]),
        })
        .collect()
}

fn resource_id(live: &[LiveResource], path: &str) -> Result<String> {
    live.iter()
        .find(|r| r.path == path)
        .map(|r| r.id.clone())
        .ok_or_else(|| Error::Unexpected {
            operation: "GetResources",
            message: format!("resource {path} not found"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_after_the_actions_need_no_more_actions() {
        let uri = integration_uri(
            "us-east-1",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
        );
        let root = LiveResource {
            id: "r00t".into(),
            path: "/".into(),
            methods: BTreeMap::new(),
        };
        let extra = LiveResource {
            id: "x1".into(),
            path: "/extra".into(),
            methods: BTreeMap::new(),
        };
        // A new API: root only, then the proxy resource created (pushed by reconcile).
        let mut live = vec![root.clone(), extra];
        assert!(!diff(&live, &uri).is_empty());
        live.push(LiveResource {
            id: "pr0xy".into(),
            path: format!("/{PROXY_PATH_PART}"),
            methods: BTreeMap::new(),
        });
        let after = routes_after(&live, &uri);
        assert!(diff(&after, &uri).is_empty(), "{after:?}");
        assert_eq!(after.len(), 2);
        assert!(after.iter().all(|r| r.path != "/extra"));
    }

    const URI: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:f/invocations";

    fn method(uri: &str) -> LiveMethod {
        LiveMethod {
            authorization_type: "NONE".into(),
            integration: Some(LiveIntegration {
                type_: "AWS_PROXY".into(),
                http_method: "POST".into(),
                uri: uri.into(),
            }),
        }
    }

    fn resource(id: &str, path: &str, methods: &[(&str, LiveMethod)]) -> LiveResource {
        LiveResource {
            id: id.into(),
            path: path.into(),
            methods: methods
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn a_new_api_gets_both_routes() {
        let actions = diff(&[resource("root", "/", &[])], URI);
        assert_eq!(
            actions,
            vec![
                RouteAction::CreateProxyResource,
                RouteAction::PutMethod { path: "/".into() },
                RouteAction::PutIntegration { path: "/".into() },
                RouteAction::PutMethod {
                    path: "/{proxy+}".into()
                },
                RouteAction::PutIntegration {
                    path: "/{proxy+}".into()
                },
            ]
        );
    }

    #[test]
    fn in_sync_means_nothing_to_do() {
        let live = [
            resource("root", "/", &[("ANY", method(URI))]),
            resource("p", "/{proxy+}", &[("ANY", method(URI))]),
        ];
        assert!(diff(&live, URI).is_empty());
    }

    #[test]
    fn drift_is_reverted() {
        let mut with_authorizer = method(URI);
        with_authorizer.authorization_type = "AWS_IAM".into();
        let live = [
            resource(
                "root",
                "/",
                &[("ANY", method("arn:other")), ("GET", method(URI))],
            ),
            resource("p", "/{proxy+}", &[("ANY", with_authorizer)]),
            resource("x", "/extra", &[]),
            resource("y", "/extra/child", &[]),
        ];
        let actions = diff(&live, URI);
        assert_eq!(
            actions,
            vec![
                RouteAction::PutIntegration { path: "/".into() },
                RouteAction::PutMethod {
                    path: "/{proxy+}".into()
                },
                RouteAction::PutIntegration {
                    path: "/{proxy+}".into()
                },
                RouteAction::DeleteResource {
                    resource_id: "x".into(),
                    path: "/extra".into()
                },
                RouteAction::DeleteMethod {
                    resource_id: "root".into(),
                    path: "/".into(),
                    method: "GET".into()
                },
            ]
        );
    }
}
