//! privateapi-operator: watches `PrivateApi` objects and keeps AWS in sync with them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use tokio::sync::watch;
use tracing::{error, info, warn};

use privateapi_operator::admin::{self, AdminState};
use privateapi_operator::aws::AwsClients;
use privateapi_operator::config::{Args, LogFormat};
use privateapi_operator::crd::PrivateApi;
use privateapi_operator::error::Error;
use privateapi_operator::leader::{Election, ElectionError, Role};
use privateapi_operator::metrics::Metrics;
use privateapi_operator::pacer::Pacer;
use privateapi_operator::probe::{HttpsGet, Prober};
use privateapi_operator::reconciler::{self, Context};
use privateapi_operator::watch_cache;

/// Why the process stops with a failure.
#[derive(thiserror::Error, Debug)]
enum Fatal {
    #[error(transparent)]
    Operator(#[from] Error),

    #[error("cannot listen for SIGTERM: {0}")]
    Signals(#[source] std::io::Error),

    #[error("cannot bind the admin server to {addr}: {source}")]
    AdminBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Election(#[from] ElectionError),

    /// Exiting stops every reconcile of this process at once; the standby takes over when the
    /// lease expires, not before (it was not renewed since the controller stopped).
    #[error("lost the lease ({0}): exiting so that nothing reconciles without it")]
    LeaseLost(String),

    /// The lease is not released then: a reconcile may still be running until the process is
    /// gone, so the standby must wait for the lease to expire.
    #[error(
        "reconciles still running {0:?} after the shutdown request: exiting without them and without releasing the lease"
    )]
    ShutdownTimeout(Duration),
}

fn init_logging(args: &Args) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .map_err(|e| format!("invalid --log / RUST_LOG filter {:?}: {e}", args.log))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        // One object per line with `timestamp`, `level`, `target`, `message` and the event's
        // fields at the top level, as log pipelines expect.
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

/// `true` from the first SIGTERM or SIGINT on. The handlers are installed before anything else,
/// so a signal at any point of the process's life leads to an orderly exit.
fn shutdown_requests() -> Result<watch::Receiver<bool>, Fatal> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(Fatal::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Fatal::Signals)?;
    let (requested, receiver) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            if requested.send_replace(true) {
                info!(signal = name, "shutdown already in progress");
            } else {
                info!(signal = name, "shutdown requested");
            }
        }
    });
    Ok(receiver)
}

async fn requested(shutdown: &mut watch::Receiver<bool>) {
    // The sender lives as long as the process: an error cannot happen, and would mean "never".
    if shutdown.wait_for(|requested| *requested).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when the lease counts as lost (never without leader election).
async fn lease_lost(role: Option<watch::Receiver<Role>>) -> String {
    let Some(mut role) = role else {
        return std::future::pending().await;
    };
    match role
        .wait_for(|role| matches!(role, Role::Lost(_)))
        .await
        .map(|role| role.clone())
    {
        Ok(Role::Lost(why)) => why,
        _ => "the leader election task ended".to_string(),
    }
}

async fn run(args: Args) -> Result<(), Fatal> {
    let mut shutdown = shutdown_requests()?;
    let settings = args.settings()?;
    let probe_settings = args.probe.settings()?;
    // Made now so that a bad --probe-ca-file stops the start, not the first probe.
    let probe_https = HttpsGet::new(probe_settings.extra_ca.as_deref())?;
    let metrics = Arc::new(Metrics::default());
    let pacer_config = args.quota.pacer_config()?;
    info!(
        pacing = pacer_config.enabled,
        share = pacer_config.share,
        scale = pacer_config.scale,
        overrides = pacer_config.overrides.len(),
        "AWS quotas"
    );
    let pacer = Arc::new(Pacer::new(pacer_config, metrics.clone()));
    let aws = AwsClients::load_with(
        args.region.clone(),
        metrics.clone(),
        args.aws_attempt_timeout(),
        pacer,
    )
    .await?;
    let lease = args.lease_config();
    info!(
        region = aws.default_region(),
        cluster = %settings.cluster_name,
        handler_packages = ?settings.handler_packages.keys().collect::<Vec<_>>(),
        lease = ?lease.as_ref().map(|l| format!("{}/{}", l.namespace, l.name)),
        identity = ?lease.as_ref().map(|l| l.identity.as_str()),
        "starting"
    );
    let client = kube::Client::try_default().await.map_err(Error::Kube)?;
    let objects: Api<DeserializeGuard<PrivateApi>> = match &args.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let admin_state = Arc::new(AdminState {
        metrics: metrics.clone(),
        ..Default::default()
    });
    let (admin_addr, _admin_task) = admin::serve(args.admin_addr, admin_state.clone())
        .await
        .map_err(|source| Fatal::AdminBind {
            addr: args.admin_addr,
            source,
        })?;
    if let Some(path) = &args.admin_addr_file {
        std::fs::write(path, admin_addr.to_string())
            .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))?;
    }

    // Only the leader runs the controller: a standby watches nothing and calls no AWS API.
    let election = lease.map(|lease| Election::start(client.clone(), lease));
    if let Some(election) = &election {
        let mut role = election.role();
        loop {
            let current = role.borrow_and_update().clone();
            admin_state
                .standby
                .store(current == Role::Standby, Ordering::Relaxed);
            match current {
                Role::Leader => break,
                Role::Lost(why) => return Err(Fatal::LeaseLost(why)),
                Role::Connecting | Role::Standby => {}
            }
            tokio::select! {
                changed = role.changed() => {
                    if changed.is_err() {
                        return Err(ElectionError::Stopped.into());
                    }
                }
                () = requested(&mut shutdown) => {
                    info!("stopping before becoming the leader");
                    admin_state.standby.store(false, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    if *shutdown.borrow() {
        if let Some(election) = election {
            // It may have become the leader just now.
            election.release().await?;
        }
        info!("stopped");
        return Ok(());
    }
    admin_state.leader.store(true, Ordering::Relaxed);
    info!(
        leader_election = election.is_some(),
        "running the controller"
    );

    let identity = election.as_ref().map(|e| e.config().identity.clone());
    let reporter = Reporter {
        controller: "privateapi-operator".into(),
        instance: identity,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let mut watch_config = watcher::Config::default().any_semantic();
    if let Some(selector) = &args.label_selector {
        watch_config = watch_config.labels(selector);
    }
    // Readiness from the watch itself: a second waiter on the store's readiness would compete
    // with the controller's own (see watch_cache::controller).
    let ready_flag = admin_state.clone();
    // Unbounded here: `--concurrency` is enforced by the context's admission, which hands the
    // slots out by class and namespace (see `admission`); kube-runtime's own limit starts the
    // reconciles it holds in hash-set order.
    let controller = watch_cache::controller(objects, watch_config, move || {
        if !ready_flag.ready.swap(true, Ordering::Relaxed) {
            info!("first list of PrivateApi objects synced");
        }
    })
    .with_config(controller::Config::default().concurrency(0));
    let context = Arc::new(
        Context::new(client, aws, settings, metrics, recorder, args.resync())
            .with_observation(
                args.quota.observation_window(),
                args.quota.deep_resync_every(),
            )
            .with_concurrency(usize::from(args.concurrency))
            .with_store(controller.store()),
    );
    // The prober (spec.probe) works on the controller's store, for as long as the controller runs.
    let prober = Prober::new(
        context.client.clone(),
        controller.store(),
        context.metrics.clone(),
        probe_https,
        &probe_settings,
    );
    let prober = tokio::spawn(prober.run());
    tokio::spawn(reconciler::prune_forgotten_every(
        context.clone(),
        reconciler::PRUNE_EVERY,
    ));
    // Graceful: the controller stops taking new work, lets the reconciles in flight finish,
    // then its stream ends.
    let (stop_taking_work, stop_trigger) = tokio::sync::oneshot::channel::<()>();
    let mut shutdown_for_trigger = shutdown.clone();
    let admission_context = context.clone();
    tokio::spawn(async move {
        requested(&mut shutdown_for_trigger).await;
        // Reconciles still waiting for a slot end at once; those holding one finish.
        admission_context.admission.close();
        let _ = stop_taking_work.send(());
    });
    let controller_done = controller
        .graceful_shutdown_on(async move {
            let _ = stop_trigger.await;
        })
        .run(reconciler::reconcile, reconciler::error_policy, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                match err {
                    controller::Error::ReconcilerFailed(_, _) => {}
                    other => warn!(error = %other, "controller"),
                }
            }
        });
    let timeout = args.shutdown_timeout();
    let mut shutdown_for_timeout = shutdown.clone();
    let shutdown_timed_out = async move {
        requested(&mut shutdown_for_timeout).await;
        info!(timeout = ?timeout, "waiting for the reconciles in flight to finish");
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        () = controller_done => {}
        () = shutdown_timed_out => return Err(Fatal::ShutdownTimeout(timeout)),
        why = lease_lost(election.as_ref().map(Election::role)) => return Err(Fatal::LeaseLost(why)),
    }
    prober.abort();
    info!("controller stopped: no reconcile in flight");
    admin_state.leader.store(false, Ordering::Relaxed);
    if let Some(election) = election
        && election.release().await?
    {
        info!("lease released");
    }
    info!("stopped");
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(message) = init_logging(&args) {
        eprintln!("privateapi-operator: {message}");
        std::process::exit(2);
    }
    let code = match run(args).await {
        Ok(()) => 0,
        Err(err) => {
            error!(error = %err, "fatal");
            1
        }
    };
    // Exit now rather than waiting for the runtime's tasks: after a lost lease or a shutdown
    // timeout, a reconcile may still be running, and must not go on.
    std::process::exit(code);
}
