//! privateapi-operator: watches `PrivateApi` objects and keeps AWS in sync with them.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Parser;
use futures::StreamExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use tracing::{error, info, warn};

use privateapi_operator::admin::{self, AdminState};
use privateapi_operator::aws::AwsClients;
use privateapi_operator::config::{Args, LogFormat};
use privateapi_operator::crd::PrivateApi;
use privateapi_operator::error::{Error, Result};
use privateapi_operator::metrics::Metrics;
use privateapi_operator::reconciler::{self, Context};

fn init_logging(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(args: Args) -> Result<()> {
    let settings = args.settings()?;
    let metrics = Arc::new(Metrics::default());
    let aws = AwsClients::load_with_attempt_timeout(
        args.region.clone(),
        metrics.clone(),
        args.aws_attempt_timeout(),
    )
    .await?;
    info!(
        region = aws.default_region(),
        cluster = %settings.cluster_name,
        handler_packages = ?settings.handler_packages.keys().collect::<Vec<_>>(),
        "starting"
    );
    let client = kube::Client::try_default().await.map_err(Error::Kube)?;
    let objects: Api<DeserializeGuard<PrivateApi>> = match &args.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    // Without leader election (yet) every process acts as the leader.
    let admin_state = Arc::new(AdminState {
        metrics: metrics.clone(),
        ..Default::default()
    });
    admin_state.leader.store(true, Ordering::Relaxed);
    let (admin_addr, _admin_task) = admin::serve(args.admin_addr, admin_state.clone())
        .await
        .map_err(|e| {
            Error::Config(format!(
                "cannot bind the admin server to {}: {e}",
                args.admin_addr
            ))
        })?;
    if let Some(path) = &args.admin_addr_file {
        std::fs::write(path, admin_addr.to_string())
            .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))?;
    }

    let reporter = Reporter {
        controller: "privateapi-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let context = Arc::new(Context::new(
        client,
        aws,
        settings,
        metrics,
        recorder,
        args.resync(),
    ));
    let mut watch_config = watcher::Config::default().any_semantic();
    if let Some(selector) = &args.label_selector {
        watch_config = watch_config.labels(selector);
    }
    let controller = Controller::new(objects, watch_config)
        .with_config(controller::Config::default().concurrency(args.concurrency));
    let store = controller.store();
    let ready_flag = admin_state.clone();
    tokio::spawn(async move {
        if store.wait_until_ready().await.is_ok() {
            ready_flag.ready.store(true, Ordering::Relaxed);
            info!("first list of PrivateApi objects synced");
        }
    });
    controller
        .shutdown_on_signal()
        .run(reconciler::reconcile, reconciler::error_policy, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                match err {
                    controller::Error::ReconcilerFailed(_, _) => {}
                    other => warn!(error = %other, "controller"),
                }
            }
        })
        .await;
    info!("stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = %err, "fatal");
            ExitCode::FAILURE
        }
    }
}
