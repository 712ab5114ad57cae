//! AWS SDK clients per region, all sharing one HTTP client (rustls + ring) and one interceptor that
//! records every HTTP attempt (service, operation, outcome) into [`Metrics`].

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::{Mutex, OnceCell};

use crate::error::{AwsResultExt, Error, Result};
use crate::metrics::Metrics;

/// Default limit of one HTTP attempt of an AWS call (the largest request is a function's zip).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Records each HTTP attempt of each SDK operation.
#[derive(Debug, Clone)]
pub struct CallRecorder {
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "privateapi-call-recorder"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(metadata) => (metadata.service().to_string(), metadata.name().to_string()),
            None => ("unknown".to_string(), "unknown".to_string()),
        };
        let status = context.response().map(|response| {
            let status = response.status().as_u16();
            if status != 429 && status >= 400 && is_throttling_response(response) {
                // EC2 answers RequestLimitExceeded with HTTP 503: count it as throttled.
                429
            } else {
                status
            }
        });
        self.metrics.record_aws_call(&service, &operation, status);
        Ok(())
    }
}

/// Whether an error response is a throttling error, by the error code in the `x-amzn-ErrorType`
/// header (REST-JSON services) or in the XML body (EC2).
fn is_throttling_response(response: &aws_smithy_runtime_api::http::Response) -> bool {
    const CODES: [&str; 4] = [
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
    ];
    if let Some(error_type) = response.headers().get("x-amzn-errortype") {
        return CODES.iter().any(|code| error_type.starts_with(code));
    }
    match response.body().bytes() {
        Some(body) => {
            let body = String::from_utf8_lossy(body);
            CODES
                .iter()
                .any(|code| body.contains(&format!("<Code>{code}</Code>")))
        }
        None => false,
    }
}

/// The three service clients for one region.
#[derive(Clone, Debug)]
pub struct RegionClients {
    pub region: String,
    pub account_id: String,
    pub ec2: aws_sdk_ec2::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub lambda: aws_sdk_lambda::Client,
}

/// Builds and caches [`RegionClients`] per region.
pub struct AwsClients {
    base: SdkConfig,
    recorder: CallRecorder,
    default_region: String,
    account_id: OnceCell<String>,
    by_region: Mutex<HashMap<String, Arc<RegionClients>>>,
}

impl AwsClients {
    /// Load the standard credential chain (env, web identity/IRSA, Pod Identity, profile, IMDS)
    /// and `AWS_ENDPOINT_URL`, with `region` overriding `AWS_REGION`.
    pub async fn load(region: Option<String>, metrics: Arc<Metrics>) -> Result<Self> {
        Self::load_with_attempt_timeout(region, metrics, DEFAULT_ATTEMPT_TIMEOUT).await
    }

    /// [`AwsClients::load`] with each HTTP attempt limited to `attempt_timeout`. Without a limit a
    /// call whose response never comes (a half-open connection) blocks its object's reconcile
    /// forever: the controller never reconciles one object twice at a time.
    pub async fn load_with_attempt_timeout(
        region: Option<String>,
        metrics: Arc<Metrics>,
        attempt_timeout: Duration,
    ) -> Result<Self> {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(attempt_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .timeout_config(timeouts);
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        let base = loader.load().await;
        let default_region = base
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| Error::Config("no AWS region: set --region or AWS_REGION".into()))?;
        Ok(Self {
            base,
            recorder: CallRecorder { metrics },
            default_region,
            account_id: OnceCell::new(),
            by_region: Mutex::new(HashMap::new()),
        })
    }

    pub fn default_region(&self) -> &str {
        &self.default_region
    }

    /// The account the operator's credentials belong to (STS GetCallerIdentity, once).
    pub async fn account_id(&self) -> Result<String> {
        self.account_id
            .get_or_try_init(|| async {
                let config = aws_sdk_sts::config::Builder::from(&self.base)
                    .interceptor(self.recorder.clone())
                    .build();
                let sts = aws_sdk_sts::Client::from_conf(config);
                let identity = sts
                    .get_caller_identity()
                    .send()
                    .await
                    .aws("STS", "GetCallerIdentity")?;
                identity.account.ok_or_else(|| Error::Unexpected {
                    operation: "GetCallerIdentity",
                    message: "no account in the answer".into(),
                })
            })
            .await
            .cloned()
    }

    /// Clients for `region` (built once per region).
    pub async fn for_region(&self, region: &str) -> Result<Arc<RegionClients>> {
        let account_id = self.account_id().await?;
        let mut cache = self.by_region.lock().await;
        if let Some(clients) = cache.get(region) {
            return Ok(clients.clone());
        }
        let config = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        let clients = Arc::new(RegionClients {
            region: region.to_string(),
            account_id,
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&config)
                    .interceptor(self.recorder.clone())
                    .build(),
            ),
            apigateway: aws_sdk_apigateway::Client::from_conf(
                aws_sdk_apigateway::config::Builder::from(&config)
                    .interceptor(self.recorder.clone())
                    .build(),
            ),
            lambda: aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(&config)
                    .interceptor(self.recorder.clone())
                    .build(),
            ),
        });
        cache.insert(region.to_string(), clients.clone());
        Ok(clients)
    }
}

/// A per-operation override that turns off the SDK's own retries, for creates that carry no
/// idempotency token: a retry after a lost response would create a duplicate, so the reconciler
/// looks the resource up by its tags before trying again instead.
pub fn no_sdk_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::disabled()
}
