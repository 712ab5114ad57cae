//! AWS SDK clients per region, all sharing one HTTP client (rustls + ring) and one interceptor that
//! records every HTTP attempt (service, operation, outcome) into [`Metrics`] and tags it for the
//! [`Pacer`], which the HTTP client consults before it sends anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, Metadata};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::{Mutex, OnceCell};

use crate::error::{AwsResultExt, Error, Result};
use crate::metrics::Metrics;
use crate::pacer::{CallTag, Pacer};

/// Default limit of one HTTP attempt of an AWS call (the largest request is a function's zip).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Records each HTTP attempt of each SDK operation, and tags it for the pacer with the
/// account-region of the clients it belongs to.
#[derive(Debug, Clone)]
pub struct CallRecorder {
    metrics: Arc<Metrics>,
    pacer: Arc<Pacer>,
    /// `account/region`; `None` for calls that are not paced (STS).
    scope: Option<String>,
    /// Set on the clients of a periodic check ([`RegionClients::read_only`]): every write is
    /// refused before it is sent, and recorded here.
    refuse_writes: Option<Arc<AtomicBool>>,
}

impl CallRecorder {
    fn tag(&self, cfg: &ConfigBag) -> Option<CallTag> {
        let scope = self.scope.clone()?;
        let metadata = cfg.load::<Metadata>()?;
        Some(CallTag {
            scope,
            service: metadata.service().to_string(),
            operation: metadata.name().to_string(),
        })
    }
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

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(attempted) = &self.refuse_writes
            && let Some(metadata) = cfg.load::<Metadata>()
            && !crate::metrics::is_read_operation(metadata.name())
        {
            attempted.store(true, Ordering::SeqCst);
            return Err(format!(
                "{} {} refused: a periodic check on shared observations does not write",
                metadata.service(),
                metadata.name()
            )
            .into());
        }
        if let Some(tag) = self.tag(cfg) {
            context.request_mut().add_extension(tag);
        }
        Ok(())
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
        if self.refuse_writes.is_some() && !crate::metrics::is_read_operation(&operation) {
            // Refused before it was sent (see `RegionClients::read_only`): not an AWS call.
            return Ok(());
        }
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
        if let (Some(status), Some(tag)) = (status, self.tag(cfg)) {
            self.pacer.on_answer(&tag, status == 429);
        }
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

/// The HTTP client of the SDK clients: waits for the pacer, then sends with a time limit per
/// attempt. The limit starts after the wait, so a long queue for quota is not a timeout.
#[derive(Debug, Clone)]
struct PacedHttpClient {
    inner: SharedHttpClient,
    pacer: Arc<Pacer>,
    attempt_timeout: Duration,
}

impl HttpClient for PacedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(PacedConnector {
            inner: self.inner.http_connector(settings, components),
            pacer: self.pacer.clone(),
            attempt_timeout: self.attempt_timeout,
        })
    }
}

#[derive(Debug)]
struct PacedConnector {
    inner: SharedHttpConnector,
    pacer: Arc<Pacer>,
    attempt_timeout: Duration,
}

impl HttpConnector for PacedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let tag = request.extension::<CallTag>().cloned();
        let inner = self.inner.clone();
        let pacer = self.pacer.clone();
        let limit = self.attempt_timeout;
        HttpConnectorFuture::new(async move {
            if let Some(tag) = &tag {
                pacer.acquire(tag).await;
            }
            match tokio::time::timeout(limit, inner.call(request)).await {
                Ok(answer) => answer,
                Err(_) => Err(ConnectorError::timeout(
                    format!("no answer within {limit:?}").into(),
                )),
            }
        })
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
    pub acm: aws_sdk_acm::Client,
    /// Route 53 is global; its client goes with the region's for the pacing and the recording.
    pub route53: aws_sdk_route53::Client,
    /// The region's SDK configuration and the recorder its clients were built with, to build the
    /// read-only handle of a periodic check.
    config: SdkConfig,
    recorder: CallRecorder,
}

impl RegionClients {
    fn build(region: &str, account_id: String, config: SdkConfig, recorder: CallRecorder) -> Self {
        Self {
            region: region.to_string(),
            account_id,
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            apigateway: aws_sdk_apigateway::Client::from_conf(
                aws_sdk_apigateway::config::Builder::from(&config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            lambda: aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(&config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            acm: aws_sdk_acm::Client::from_conf(
                aws_sdk_acm::config::Builder::from(&config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            route53: aws_sdk_route53::Client::from_conf(
                aws_sdk_route53::config::Builder::from(&config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            config,
            recorder,
        }
    }

    /// A handle on the same region whose clients refuse every write before it is sent: what a
    /// periodic check on shared observations is given, so it cannot change anything whatever
    /// code path it takes. Reads are recorded and paced as usual.
    pub fn read_only(&self) -> ReadOnlyClients {
        let attempted = Arc::new(AtomicBool::new(false));
        let recorder = CallRecorder {
            refuse_writes: Some(attempted.clone()),
            ..self.recorder.clone()
        };
        ReadOnlyClients {
            clients: Self::build(
                &self.region,
                self.account_id.clone(),
                self.config.clone(),
                recorder,
            ),
            attempted,
        }
    }
}

/// The clients of a periodic check: every write is refused before it is sent.
#[derive(Debug)]
pub struct ReadOnlyClients {
    clients: RegionClients,
    attempted: Arc<AtomicBool>,
}

impl ReadOnlyClients {
    /// The clients, to read with (a write fails with an error, without being sent).
    pub fn clients(&self) -> &RegionClients {
        &self.clients
    }

    /// Whether anything tried to write through these clients: a check that would have changed
    /// AWS is not a confirmation that AWS matches the spec.
    pub fn write_attempted(&self) -> bool {
        self.attempted.load(Ordering::SeqCst)
    }
}

/// Builds and caches [`RegionClients`] per region.
pub struct AwsClients {
    base: SdkConfig,
    recorder: CallRecorder,
    pacer: Arc<Pacer>,
    default_region: String,
    account_id: OnceCell<String>,
    by_region: Mutex<HashMap<String, Arc<RegionClients>>>,
}

impl AwsClients {
    /// Load the standard credential chain (env, web identity/IRSA, Pod Identity, profile, IMDS)
    /// and `AWS_ENDPOINT_URL`, with `region` overriding `AWS_REGION`.
    /// Calls are not paced (tools and tests that use the parts directly).
    pub async fn load(region: Option<String>, metrics: Arc<Metrics>) -> Result<Self> {
        let pacer = Arc::new(Pacer::disabled(metrics.clone()));
        Self::load_with(region, metrics, DEFAULT_ATTEMPT_TIMEOUT, pacer).await
    }

    /// [`AwsClients::load`] with every call paced by `pacer` and each HTTP attempt limited to
    /// `attempt_timeout` once it is sent. Without a limit a call whose response never comes (a
    /// half-open connection) blocks its object's reconcile forever: the controller never
    /// reconciles one object twice at a time.
    pub async fn load_with(
        region: Option<String>,
        metrics: Arc<Metrics>,
        attempt_timeout: Duration,
        pacer: Arc<Pacer>,
    ) -> Result<Self> {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let http_client = SharedHttpClient::new(PacedHttpClient {
            inner: http_client,
            pacer: pacer.clone(),
            attempt_timeout,
        });
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build();
        // The SDK's upload stall protection times a request body from the moment the connector
        // is called, so it would count the wait for quota as a stalled upload. The attempt
        // timeout above covers a stalled upload instead; downloads stay protected.
        let stalls = StalledStreamProtectionConfig::enabled()
            .upload_enabled(false)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .timeout_config(timeouts)
            .stalled_stream_protection(stalls);
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
            recorder: CallRecorder {
                metrics,
                pacer: pacer.clone(),
                scope: None,
                refuse_writes: None,
            },
            pacer,
            default_region,
            account_id: OnceCell::new(),
            by_region: Mutex::new(HashMap::new()),
        })
    }

    pub fn pacer(&self) -> &Arc<Pacer> {
        &self.pacer
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
        // Quotas are per account and region.
        let recorder = CallRecorder {
            scope: Some(format!("{account_id}/{region}")),
            ..self.recorder.clone()
        };
        let clients = Arc::new(RegionClients::build(region, account_id, config, recorder));
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

/// The API Gateway per-operation override without the SDK's retries ([`no_sdk_retries`]), for
/// `.customize().config_override(..)`.
pub fn apigateway_without_retries() -> aws_sdk_apigateway::config::Builder {
    aws_sdk_apigateway::config::Builder::default().retry_config(no_sdk_retries())
}
