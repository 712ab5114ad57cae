//! Command-line flags (each also an environment variable).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::crd::Architecture;
use crate::error::{Error, Result};
use crate::leader::LeaseConfig;
use crate::pacer::{PacerConfig, parse_override};
use crate::parts::{HandlerPackage, Settings};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "privateapi-operator",
    version,
    about = "Reconciles PrivateApi objects into private API Gateway REST APIs"
)]
pub struct Args {
    /// Name of this cluster, tagged on every AWS resource (`privateapi.io/cluster`). Two clusters
    /// sharing an AWS account must use different names.
    #[arg(long, env = "PAPI_CLUSTER_NAME")]
    pub cluster_name: String,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "PAPI_NAMESPACE")]
    pub namespace: Option<String>,

    /// Watch only objects matching this label selector (to shard objects across operators).
    #[arg(long, env = "PAPI_LABEL_SELECTOR")]
    pub label_selector: Option<String>,

    /// Seconds between drift checks of an object that is in sync.
    #[arg(long, env = "PAPI_RESYNC_SECONDS", default_value_t = 600)]
    pub resync_seconds: u64,

    /// Limit of one HTTP attempt of an AWS call, in seconds (a call that gets no answer is
    /// retried rather than blocking its object).
    #[arg(long, env = "PAPI_AWS_ATTEMPT_TIMEOUT_SECONDS", default_value_t = 60)]
    pub aws_attempt_timeout_seconds: u64,

    /// Objects reconciled at the same time (at least 1); the others wait their turn, changes
    /// before periodic checks, namespaces in turn.
    #[arg(long, env = "PAPI_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// The built-in handler package (zip) for arm64.
    #[arg(long, env = "PAPI_HANDLER_ZIP_ARM64")]
    pub handler_zip_arm64: Option<PathBuf>,

    /// The built-in handler package (zip) for x86_64.
    #[arg(long, env = "PAPI_HANDLER_ZIP_X86_64")]
    pub handler_zip_x86_64: Option<PathBuf>,

    /// Execution role of the functions the operator creates when the spec names none.
    #[arg(long, env = "PAPI_DEFAULT_EXECUTION_ROLE_ARN")]
    pub default_execution_role_arn: Option<String>,

    /// AWS region of objects that name none (default: the SDK's, e.g. AWS_REGION).
    #[arg(long, env = "PAPI_REGION")]
    pub region: Option<String>,

    /// Address of the admin server (/healthz, /readyz, /metrics).
    #[arg(long, env = "PAPI_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,

    /// Write the admin server's bound address to this file (useful with port 0).
    #[arg(long, env = "PAPI_ADMIN_ADDR_FILE")]
    pub admin_addr_file: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "PAPI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax): a level (`debug`) or per-module levels, e.g.
    /// `info,privateapi_operator=debug`.
    #[arg(
        long,
        visible_alias = "log-level",
        env = "RUST_LOG",
        default_value = "info"
    )]
    pub log: String,

    /// Take part in leader election on a Lease: only the holder reconciles, the others wait as
    /// standbys. `--leader-election=false` reconciles without (a single replica only).
    #[arg(
        long,
        env = "PAPI_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub leader_election: bool,

    /// Name of the Lease (coordination.k8s.io/v1) the replicas elect their leader with.
    #[arg(long, env = "PAPI_LEASE_NAME", default_value = "privateapi-operator")]
    pub lease_name: String,

    /// Namespace of the Lease (default: the namespace of the pod's service account, else `default`).
    #[arg(long, env = "PAPI_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's name in the Lease's holderIdentity (default: host name and process ID). Two
    /// live replicas must never share it.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// How long the lease holds after a renewal: a standby takes over at most this long after the
    /// leader died. The leader renews every third of it.
    #[arg(
        long,
        env = "PAPI_LEASE_DURATION_SECONDS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(2..=3600)
    )]
    pub lease_duration_seconds: u64,

    /// At SIGTERM/SIGINT, how long reconciles in flight may take to finish before the process
    /// exits without them (and without releasing the lease).
    #[arg(long, env = "PAPI_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 20)]
    pub shutdown_timeout_seconds: u64,

    #[command(flatten)]
    pub quota: QuotaArgs,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// The prober of objects with `spec.probe` (see `src/probe/`).
#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    /// Probes per second at most, all objects together (each object is probed at most every
    /// `spec.probe.intervalSeconds`).
    #[arg(long, env = "PAPI_PROBE_RATE", default_value_t = 5.0)]
    pub probe_rate: f64,

    /// Probes in flight at most.
    #[arg(long, env = "PAPI_PROBE_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub probe_concurrency: u16,

    /// A PEM file of certificates the probes trust besides the platform's (`SSL_CERT_FILE`,
    /// `SSL_CERT_DIR`), e.g. a TLS-inspecting proxy's, or a test bed's.
    #[arg(long, env = "PAPI_PROBE_CA_FILE")]
    pub probe_ca_file: Option<PathBuf>,
}

impl ProbeArgs {
    pub fn settings(&self) -> Result<crate::probe::ProbeSettings> {
        if !(self.probe_rate > 0.0 && self.probe_rate.is_finite()) {
            return Err(Error::Config(format!(
                "--probe-rate must be > 0, not {}",
                self.probe_rate
            )));
        }
        Ok(crate::probe::ProbeSettings {
            rate: self.probe_rate,
            concurrency: usize::from(self.probe_concurrency),
            extra_ca: self.probe_ca_file.clone(),
        })
    }
}

/// How the operator lives within AWS's control-plane quotas (see `src/pacer/` and
/// `src/observed/`).
#[derive(clap::Args, Debug, Clone)]
pub struct QuotaArgs {
    /// Pace AWS calls within the published quotas. `--aws-pacing=false` only for comparison:
    /// without it, the operator competes with every other tool of the account for its quotas.
    #[arg(
        long,
        env = "PAPI_AWS_PACING",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub aws_pacing: bool,

    /// The share of each published quota the operator may use (0 < share <= 1); the rest is left
    /// to the account's other tools (Terraform, the console, CI).
    #[arg(long, env = "PAPI_AWS_QUOTA_SHARE", default_value_t = 0.5)]
    pub aws_quota_share: f64,

    /// Override a quota of the built-in table: `SERVICE[:OPERATION]=RATE[/BURST]` or
    /// `SERVICE:OPERATION=1/5s`, e.g. `API Gateway:CreateDeployment=1/5s` (repeatable; in the
    /// environment, separated by `;`).
    #[arg(long, env = "PAPI_AWS_QUOTA", value_delimiter = ';')]
    pub aws_quota: Vec<String>,

    /// Multiply every quota by this (test beds that enforce scaled quotas).
    #[arg(long, env = "PAPI_AWS_QUOTA_SCALE", default_value_t = 1.0)]
    pub aws_quota_scale: f64,

    /// An AWS call that waited this long for quota is reported on its object (reason
    /// `WaitingForQuota`).
    #[arg(long, env = "PAPI_QUOTA_WAIT_REPORT_SECONDS", default_value_t = 5)]
    pub quota_wait_report_seconds: u64,

    /// How long one listing of the account-region's APIs, functions, endpoints and security
    /// groups serves the periodic checks of all objects.
    #[arg(long, env = "PAPI_OBSERVATION_WINDOW_SECONDS", default_value_t = 60)]
    pub observation_window_seconds: u64,

    /// Every Nth periodic check of an object also reads what has no listing (routes, the
    /// function's policy); the others rely on the listings and the stage. 1: every check.
    #[arg(long, env = "PAPI_DEEP_RESYNC_EVERY", default_value_t = 10)]
    pub deep_resync_every: u32,
}

impl QuotaArgs {
    pub fn pacer_config(&self) -> Result<PacerConfig> {
        if !(self.aws_quota_share > 0.0 && self.aws_quota_share <= 1.0) {
            return Err(Error::Config(format!(
                "--aws-quota-share must be in (0, 1], not {}",
                self.aws_quota_share
            )));
        }
        if !(self.aws_quota_scale > 0.0 && self.aws_quota_scale.is_finite()) {
            return Err(Error::Config(format!(
                "--aws-quota-scale must be > 0, not {}",
                self.aws_quota_scale
            )));
        }
        let overrides = self
            .aws_quota
            .iter()
            .filter(|text| !text.trim().is_empty())
            .map(|text| parse_override(text).map_err(|e| Error::Config(format!("--aws-quota {e}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(PacerConfig {
            enabled: self.aws_pacing,
            share: self.aws_quota_share,
            scale: self.aws_quota_scale,
            overrides,
            report_after: Duration::from_secs(self.quota_wait_report_seconds.max(1)),
        })
    }

    pub fn observation_window(&self) -> Duration {
        Duration::from_secs(self.observation_window_seconds.max(1))
    }

    pub fn deep_resync_every(&self) -> u32 {
        self.deep_resync_every.max(1)
    }
}

/// Where Kubernetes mounts the pod's service account namespace.
const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Args {
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds.max(1))
    }

    pub fn aws_attempt_timeout(&self) -> Duration {
        Duration::from_secs(self.aws_attempt_timeout_seconds.max(1))
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_seconds)
    }

    /// This replica's identity in the Lease.
    pub fn identity(&self) -> String {
        match &self.identity {
            Some(identity) if !identity.trim().is_empty() => identity.clone(),
            _ => {
                let host = std::env::var("HOSTNAME")
                    .ok()
                    .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                    .map(|host| host.trim().to_string())
                    .filter(|host| !host.is_empty())
                    .unwrap_or_else(|| "privateapi-operator".to_string());
                format!("{host}-{}", std::process::id())
            }
        }
    }

    /// The Lease to elect the leader with, if leader election is on.
    pub fn lease_config(&self) -> Option<LeaseConfig> {
        if !self.leader_election {
            return None;
        }
        let namespace = self.lease_namespace.clone().unwrap_or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE)
                .ok()
                .map(|namespace| namespace.trim().to_string())
                .filter(|namespace| !namespace.is_empty())
                .unwrap_or_else(|| "default".to_string())
        });
        Some(LeaseConfig {
            name: self.lease_name.clone(),
            namespace,
            identity: self.identity(),
            duration_seconds: self.lease_duration_seconds,
        })
    }

    /// Read the handler packages and build the parts' settings.
    pub fn settings(&self) -> Result<Settings> {
        let mut handler_packages = BTreeMap::new();
        for (architecture, path) in [
            (Architecture::Arm64, &self.handler_zip_arm64),
            (Architecture::X86_64, &self.handler_zip_x86_64),
        ] {
            if let Some(path) = path {
                let zip = std::fs::read(path).map_err(|e| {
                    Error::Config(format!(
                        "cannot read handler package {}: {e}",
                        path.display()
                    ))
                })?;
                handler_packages.insert(
                    architecture.as_str().to_string(),
                    HandlerPackage::from_zip(architecture, zip),
                );
            }
        }
        if self.cluster_name.trim().is_empty() {
            return Err(Error::Config("--cluster-name must not be empty".into()));
        }
        Ok(Settings {
            cluster_name: self.cluster_name.clone(),
            default_execution_role_arn: self.default_execution_role_arn.clone(),
            handler_packages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_packages_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let zip = dir.path().join("handler.zip");
        std::fs::write(&zip, b"PK fake").expect("write");
        let args = Args::try_parse_from([
            "privateapi-operator",
            "--cluster-name",
            "dev",
            "--handler-zip-x86-64",
            zip.to_str().expect("utf-8 path"),
            "--resync-seconds",
            "30",
        ])
        .expect("parses");
        let settings = args.settings().expect("settings");
        assert_eq!(args.resync(), Duration::from_secs(30));
        assert_eq!(
            settings.default_builtin_architecture(),
            Some(Architecture::X86_64)
        );
        assert!(settings.handler_package(Architecture::Arm64).is_none());
        let missing = Args::try_parse_from([
            "privateapi-operator",
            "--cluster-name",
            "dev",
            "--handler-zip-arm64",
            "/nonexistent.zip",
        ])
        .expect("parses");
        assert!(missing.settings().is_err());
    }

    #[test]
    fn leader_election_flags() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["privateapi-operator", "--cluster-name", "dev"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv)
        };
        let defaults = parse(&["--lease-namespace", "ops"]).expect("parses");
        let lease = defaults.lease_config().expect("on by default");
        assert_eq!(lease.name, "privateapi-operator");
        assert_eq!(lease.namespace, "ops");
        assert_eq!(lease.duration_seconds, 15);
        assert!(
            lease
                .identity
                .ends_with(&format!("-{}", std::process::id()))
        );
        assert_eq!(defaults.shutdown_timeout(), Duration::from_secs(20));
        for off in [
            &["--leader-election=false"][..],
            &["--leader-election", "false"],
        ] {
            // `--leader-election false` is the flag followed by a stray argument: rejected.
            match parse(off) {
                Ok(args) => assert!(args.lease_config().is_none(), "{off:?}"),
                Err(_) => assert_eq!(off.len(), 2),
            }
        }
        assert!(
            parse(&["--leader-election"])
                .expect("parses")
                .leader_election
        );
        let custom = parse(&[
            "--lease-name",
            "papi-a",
            "--identity",
            "pod-0",
            "--lease-duration-seconds",
            "6",
        ])
        .expect("parses");
        let lease = custom.lease_config().expect("on");
        assert_eq!(
            (
                lease.name.as_str(),
                lease.identity.as_str(),
                lease.duration_seconds
            ),
            ("papi-a", "pod-0", 6)
        );
        assert!(parse(&["--lease-duration-seconds", "1"]).is_err());
        assert!(parse(&["--log-level", "debug"]).is_ok());
    }

    #[test]
    fn quota_flags() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["privateapi-operator", "--cluster-name", "dev"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv).expect("parses")
        };
        let defaults = parse(&[]).quota.pacer_config().expect("valid");
        assert!(defaults.enabled);
        assert_eq!((defaults.share, defaults.scale), (0.5, 1.0));
        let args = parse(&[
            "--aws-pacing=false",
            "--aws-quota-share",
            "1",
            "--aws-quota",
            "API Gateway:CreateDeployment=1/2s",
            "--aws-quota",
            "Lambda=30",
        ]);
        let config = args.quota.pacer_config().expect("valid");
        assert!(!config.enabled);
        assert_eq!(config.overrides.len(), 2);
        assert!(
            parse(&["--aws-quota-share", "0"])
                .quota
                .pacer_config()
                .is_err()
        );
        assert!(
            parse(&["--aws-quota-share", "1.5"])
                .quota
                .pacer_config()
                .is_err()
        );
        let bad = parse(&["--aws-quota", "S3=1"]).quota.pacer_config();
        assert!(matches!(bad, Err(Error::Config(m)) if m.contains("--aws-quota")));
        assert_eq!(
            parse(&["--deep-resync-every", "0"])
                .quota
                .deep_resync_every(),
            1
        );
    }
}
