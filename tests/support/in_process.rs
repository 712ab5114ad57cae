//! The reconciler run inside the test's own process, on a controller store the test feeds by hand:
//! to put the operator in states that a running process reaches only by timing (a watch that lags
//! behind the operator's own writes, an object deleted while another replica led). It talks to the
//! real API server and the AWS fake, like the operator process.

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use privateapi_operator::aws::AwsClients;
use privateapi_operator::crd::{Architecture, PrivateApi};
use privateapi_operator::metrics::Metrics;
use privateapi_operator::parts::{HandlerPackage, Settings};
use privateapi_operator::reconciler::{self, Context};

use super::{REGION, poll};

/// One in-process operator: its context, and the writer of the store its reconciles read.
pub struct InProcess {
    pub ctx: Arc<Context>,
    store: Writer<DeserializeGuard<PrivateApi>>,
    api: Api<PrivateApi>,
}

impl InProcess {
    /// An operator for objects of `namespace`, with its own `cluster` name (the ownership tags),
    /// the test bed's handler package and Lambda role, and unpaced AWS calls.
    pub async fn new(namespace: &str, cluster: &str) -> Self {
        let client = kube::Client::try_default().await.expect("kubeconfig");
        let metrics = Arc::new(Metrics::default());
        let aws = AwsClients::load(Some(REGION.to_string()), metrics.clone())
            .await
            .expect("AWS clients");
        let zip = std::env::var("PAPI_HANDLER_ZIP_X86_64")
            .expect("PAPI_HANDLER_ZIP_X86_64 (scripts/build-handler.sh)");
        let package = HandlerPackage::from_zip(
            Architecture::X86_64,
            std::fs::read(&zip).expect("the handler zip"),
        );
        let settings = Settings {
            cluster_name: cluster.to_string(),
            default_execution_role_arn: std::env::var("PAPI_LAMBDA_ROLE_ARN").ok(),
            handler_packages: [(Architecture::X86_64.as_str().to_string(), package)].into(),
        };
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "privateapi-operator-test".into(),
                instance: None,
            },
        );
        let (store, writer) = reflector::store::<DeserializeGuard<PrivateApi>>();
        let ctx = Context::new(
            client.clone(),
            aws,
            settings,
            metrics,
            recorder,
            Duration::from_secs(600),
        )
        .with_store(store);
        Self {
            ctx: Arc::new(ctx),
            store: writer,
            api: Api::namespaced(client, namespace),
        }
    }

    /// The object as the API server has it now.
    pub async fn get(&self, name: &str) -> Option<PrivateApi> {
        self.api.get_opt(name).await.expect("GET PrivateApi")
    }

    /// Put `copy` in the store, as a watch event would (an old copy models a lagging watch).
    pub fn feed(&mut self, copy: &PrivateApi) {
        self.store
            .apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(copy.clone()))));
    }

    /// Remove `copy`'s object from the store, as the watch's delete event does.
    pub fn feed_deleted(&mut self, copy: &PrivateApi) {
        self.store
            .apply_watcher_event(&watcher::Event::Delete(DeserializeGuard(Ok(copy.clone()))));
    }

    /// One reconcile of the object `copy` names, as the controller triggers it (the reconcile reads
    /// the store's copy of the object, not `copy`).
    pub async fn reconcile(&self, copy: &PrivateApi) -> Result<Action, String> {
        reconciler::reconcile(
            Arc::new(DeserializeGuard(Ok(copy.clone()))),
            self.ctx.clone(),
        )
        .await
        .map_err(|err| err.to_string())
    }

    /// Feed the object's newest copy and reconcile it, over and over (every 500 ms), until
    /// `done` holds for the newest copy or it is gone; panics after `timeout`. Returns the copies
    /// fed to the store, oldest first (the last one is the one `done` held for).
    pub async fn reconcile_until(
        &mut self,
        name: &str,
        timeout: Duration,
        done: impl Fn(Option<&PrivateApi>) -> bool,
    ) -> Vec<PrivateApi> {
        let mut fed = Vec::new();
        poll::until_async(
            &format!("{name} to get there"),
            timeout,
            Duration::from_millis(500),
            async || {
                let current = self.get(name).await;
                if done(current.as_ref()) {
                    if let Some(current) = current {
                        fed.push(current);
                    }
                    return Ok(());
                }
                let Some(current) = current else {
                    panic!("{name} is gone before it got there");
                };
                self.feed(&current);
                fed.push(current.clone());
                if let Err(err) = self.reconcile(&current).await {
                    eprintln!("reconcile of {name}: {err} (retried)");
                }
                Err(format!("{:?}", current.status))
            },
        )
        .await;
        fed
    }
}

/// Whether `object` is Ready for its generation.
pub fn ready(object: Option<&PrivateApi>) -> bool {
    object.is_some_and(|o| {
        o.status.as_ref().is_some_and(|s| {
            s.observed_generation == o.metadata.generation
                && s.conditions.iter().any(|c| {
                    c.type_ == "Ready"
                        && c.status == "True"
                        && c.observed_generation == o.metadata.generation
                })
        })
    })
}
