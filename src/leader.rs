//! Leader election on a `coordination.k8s.io/v1` Lease, with the kube-lease-manager crate doing the
//! acquiring, renewing and releasing.
//!
//! Two additions around the crate, both about time:
//! - A standby waits in the crate until the lease it saw would expire, even when its holder released
//!   it earlier (graceful shutdown). So the standby also reads the Lease every [`RETRY_PERIOD`] and,
//!   when it finds it released, starts a fresh attempt that takes it at once.
//! - The crate tells its holder about a lost lease only once it can talk to the API server again.
//!   The leader therefore reads the Lease itself and keeps its own deadline: the `renewTime` it last
//!   saw there (written with this process's clock) plus the lease duration. Past that deadline, or
//!   when the Lease names another holder, the lease counts as lost ([`Role::Lost`]) and the process
//!   must stop reconciling at once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerError, LeaseParams};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

/// How often a standby looks whether the lease was released, and the leader reads the Lease to
/// confirm it still holds it (the period client-go's leader election retries with).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// How long before its deadline the leader gives the lease up: room for the other replicas' clocks
/// running a little ahead of ours (a standby takes over when the lease has expired by its clock).
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(1);

/// Bound of one read of the Lease, so a hanging API server cannot keep the leader past its deadline.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Bound of releasing the lease at shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which Lease, who we are, how long a renewal holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// `leaseDurationSeconds`: how long a standby waits after the last renewal. At least 2.
    pub duration_seconds: u64,
}

impl LeaseConfig {
    /// Seconds between renewals: a third of the duration, so a renewal can fail twice before the
    /// lease expires.
    pub fn renew_interval_seconds(&self) -> u64 {
        (self.duration_seconds / 3).max(1)
    }

    /// The crate's `grace`: it renews this many seconds before the lease would expire.
    fn grace_seconds(&self) -> u64 {
        self.duration_seconds - self.renew_interval_seconds()
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_seconds)
    }

    /// How often the leader confirms its lease (never less than four times per duration).
    fn check_period(&self) -> Duration {
        RETRY_PERIOD.min(self.duration() / 4)
    }
}

#[derive(thiserror::Error, Debug)]
pub enum ElectionError {
    #[error("lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },

    #[error("releasing lease {namespace}/{name} took longer than {RELEASE_TIMEOUT:?}")]
    ReleaseTimeout { namespace: String, name: String },

    #[error("the leader election task ended")]
    Stopped,
}

/// Where this process stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Reading or creating the Lease (the API server may not answer yet).
    Connecting,
    /// Another process holds the lease; waiting to take it over.
    Standby,
    /// This process holds the lease.
    Leader,
    /// This process held the lease and can no longer be sure it does: it must stop reconciling.
    Lost(String),
}

type ReleaseReply = oneshot::Sender<Result<bool, ElectionError>>;

/// The running election: its role as it changes, and the release at shutdown.
pub struct Election {
    config: LeaseConfig,
    role: watch::Receiver<Role>,
    release: oneshot::Sender<ReleaseReply>,
    task: JoinHandle<()>,
}

impl Election {
    /// Start taking part in the election in the background.
    pub fn start(client: kube::Client, config: LeaseConfig) -> Self {
        let (role_tx, role) = watch::channel(Role::Connecting);
        let (release, release_rx) = oneshot::channel();
        let task = tokio::spawn(run(client, config.clone(), role_tx, release_rx));
        Self {
            config,
            role,
            release,
            task,
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// The role, to watch for changes.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Stop taking part. If this process holds the lease, hand it back (empty holder) so that a
    /// standby takes over at once instead of after the lease expires. `Ok(true)`: released.
    pub async fn release(self) -> Result<bool, ElectionError> {
        let (reply, answer) = oneshot::channel();
        if self.release.send(reply).is_err() {
            return Err(ElectionError::Stopped);
        }
        let result = answer.await.unwrap_or(Err(ElectionError::Stopped));
        let _ = self.task.await;
        result
    }
}

async fn run(
    client: kube::Client,
    config: LeaseConfig,
    role: watch::Sender<Role>,
    mut release: oneshot::Receiver<ReleaseReply>,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let manager = tokio::select! {
        manager = acquire(&client, &config, &leases, &role) => manager,
        reply = &mut release => {
            // Not the holder: nothing to hand back.
            if let Ok(reply) = reply {
                let _ = reply.send(Ok(false));
            }
            return;
        }
    };
    info!(
        lease = %config.name,
        namespace = %config.namespace,
        identity = %config.identity,
        duration_seconds = config.duration_seconds,
        "acquired the lease: this process is the leader"
    );
    role.send_replace(Role::Leader);
    tokio::select! {
        why = hold(&manager, &config, &leases) => {
            error!(lease = %config.name, identity = %config.identity, reason = %why, "lost the lease");
            role.send_replace(Role::Lost(why));
        }
        reply = &mut release => {
            let result = match tokio::time::timeout(RELEASE_TIMEOUT, manager.release()).await {
                Ok(Ok(())) => Ok(true),
                Ok(Err(source)) => Err(ElectionError::Lease {
                    namespace: config.namespace.clone(),
                    name: config.name.clone(),
                    source,
                }),
                Err(_) => Err(ElectionError::ReleaseTimeout {
                    namespace: config.namespace.clone(),
                    name: config.name.clone(),
                }),
            };
            if let Ok(reply) = reply {
                let _ = reply.send(result);
            }
        }
    }
}

async fn new_manager(
    client: &kube::Client,
    config: &LeaseConfig,
) -> Result<LeaseManager, LeaseManagerError> {
    // LeaseParams::new panics unless 0 < grace < duration: Args guarantees duration >= 2, so the
    // renew interval is at least 1 and the grace at least 1.
    let params = LeaseParams::new(
        config.identity.clone(),
        config.duration_seconds,
        config.grace_seconds(),
    );
    LeaseManager::new(
        client.clone(),
        config.name.clone(),
        config.namespace.clone(),
        params,
        LeaseCreateMode::AutoCreate,
    )
    .await
}

/// Wait until this process holds the lease.
async fn acquire(
    client: &kube::Client,
    config: &LeaseConfig,
    leases: &Api<Lease>,
    role: &watch::Sender<Role>,
) -> Arc<LeaseManager> {
    loop {
        let manager = match new_manager(client, config).await {
            Ok(manager) => Arc::new(manager),
            Err(err) => {
                warn!(lease = %config.name, namespace = %config.namespace, error = %err, "cannot read or create the lease; retrying");
                tokio::time::sleep(RETRY_PERIOD).await;
                continue;
            }
        };
        role.send_if_modified(|role| {
            let connecting = *role == Role::Connecting;
            if connecting {
                *role = Role::Standby;
            }
            connecting
        });
        let started = Instant::now();
        let attempt = {
            let manager = manager.clone();
            async move { manager.changed().await }
        };
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                result = &mut attempt => {
                    match result {
                        Ok(true) => return manager,
                        // A non-holder only hears of a change when it becomes the holder.
                        Ok(false) => {}
                        Err(err) => {
                            warn!(lease = %config.name, error = %err, "waiting for the lease failed; retrying");
                            tokio::time::sleep(RETRY_PERIOD).await;
                        }
                    }
                    break;
                }
                () = tokio::time::sleep(RETRY_PERIOD) => {
                    // A fresh attempt takes a free lease within a few requests: an attempt still
                    // waiting a period later waits for an expiry that no longer matters.
                    if started.elapsed() >= RETRY_PERIOD && is_released(leases, &config.name).await {
                        debug!(lease = %config.name, "the lease was released: trying to take it now");
                        break;
                    }
                }
            }
        }
    }
}

/// Whether the Lease has no holder (its holder released it).
async fn is_released(leases: &Api<Lease>, name: &str) -> bool {
    match tokio::time::timeout(READ_TIMEOUT, leases.get(name)).await {
        Ok(Ok(lease)) => lease.spec.is_none_or(|spec| spec.holder_identity.is_none()),
        _ => false,
    }
}

/// Keep the lease renewed (the crate does) and return why it counts as lost.
async fn hold(manager: &LeaseManager, config: &LeaseConfig, leases: &Api<Lease>) -> String {
    let renewing = async {
        loop {
            match manager.changed().await {
                Ok(false) => return "another process took the lease over".to_string(),
                Ok(true) => {}
                Err(err) => {
                    warn!(lease = %config.name, error = %err, "renewing the lease failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    };
    tokio::pin!(renewing);
    // Until the first read: the crate wrote renewTime just before it reported the lease as ours.
    let mut valid_until =
        SystemTime::now() + config.duration().saturating_sub(config.check_period());
    loop {
        match tokio::time::timeout(READ_TIMEOUT, leases.get(&config.name)).await {
            Ok(Ok(lease)) => {
                let spec = lease.spec.unwrap_or_default();
                match spec.holder_identity {
                    Some(holder) if holder == config.identity => {
                        if let (Some(renewed), Some(seconds)) =
                            (spec.renew_time, spec.lease_duration_seconds)
                        {
                            let seconds = u64::try_from(seconds).unwrap_or(0);
                            valid_until =
                                SystemTime::from(renewed.0) + Duration::from_secs(seconds);
                        }
                    }
                    other => {
                        return format!(
                            "the lease names another holder ({})",
                            other.as_deref().unwrap_or("none")
                        );
                    }
                }
            }
            Ok(Err(err)) => {
                warn!(lease = %config.name, error = %err, "cannot read the lease to confirm it is ours");
            }
            Err(_) => {
                warn!(lease = %config.name, "reading the lease timed out");
            }
        }
        let left = valid_until
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(CLOCK_SKEW_ALLOWANCE);
        if left.is_zero() {
            return format!(
                "not renewed within the lease duration ({} s)",
                config.duration_seconds
            );
        }
        tokio::select! {
            why = &mut renewing => return why,
            () = tokio::time::sleep(left.min(config.check_period())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(duration_seconds: u64) -> LeaseConfig {
        LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: "i".into(),
            duration_seconds,
        }
    }

    #[test]
    fn renewals_fit_in_the_duration() {
        for duration in 2..=120 {
            let config = config(duration);
            let grace = config.grace_seconds();
            // What LeaseParams::new requires, else it panics.
            assert!(grace > 0 && grace < duration, "duration {duration}");
            assert!(config.renew_interval_seconds() * 2 <= duration);
            assert!(config.check_period() <= RETRY_PERIOD);
        }
        assert_eq!(config(15).renew_interval_seconds(), 5);
    }
}
