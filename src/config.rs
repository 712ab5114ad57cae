//! Command-line flags (each also an environment variable).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::crd::Architecture;
use crate::error::{Error, Result};
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

    /// Objects reconciled at the same time.
    #[arg(long, env = "PAPI_CONCURRENCY", default_value_t = 8)]
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

    /// Log filter (tracing EnvFilter syntax), e.g. `info,privateapi_operator=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,
}

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
}
