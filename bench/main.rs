//! `bench`: the benchmark harness's command line (run by `bench/run.sh`, see bench/README.md).
//!
//!     bench run --n 100 --latency-ms 50 --operator target/release/privateapi-operator \
//!         --handler-zip privateapi-handler-x86_64.zip --out run.json
//!     bench report --commit abc1234 --date 2026-11-25 --dir bench/results run1.json run2.json

mod harness;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser)]
#[command(name = "bench", about = "privateapi-operator benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// One run inside a test bed: N objects, one injected latency.
    Run {
        #[arg(long)]
        n: usize,
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// The operator binary (release build).
        #[arg(long)]
        operator: PathBuf,
        /// The built-in handler package (x86_64 zip).
        #[arg(long)]
        handler_zip: PathBuf,
        /// Where the run's JSON goes.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 4)]
        namespaces: usize,
        /// Every this many objects, one creates its own endpoint; the others share one.
        #[arg(long, default_value_t = 5)]
        create_every: usize,
        /// The operator's --concurrency (default: the operator's default).
        #[arg(long)]
        concurrency: Option<u16>,
        /// Seconds to wait for every object to be Ready.
        #[arg(long, default_value_t = 1800)]
        timeout_s: u64,
        /// The fault proxy's URL (PUT /__faults/latency).
        #[arg(long)]
        faults_url: Option<String>,
        /// AWS endpoint for the operator (the fault proxy); default: AWS_ENDPOINT_URL.
        #[arg(long)]
        operator_aws_endpoint: Option<String>,
        /// AWS quotas the fault proxy enforces: a JSON file with the body of its
        /// `PUT /__faults/quotas` (needs --faults-url).
        #[arg(long)]
        quotas_file: Option<PathBuf>,
        /// Recorded in the run's `setup`, e.g. `pacer=off`.
        #[arg(long = "mode", value_parser = parse_key_value)]
        mode: Vec<(String, String)>,
        /// Operator log and scratch files (default: a temp directory).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// More operator flags, after `--`.
        #[arg(last = true)]
        operator_args: Vec<String>,
    },
    /// Combine runs into `<dir>/<date>-<commit>.json` and `.md`.
    Report {
        #[arg(long)]
        commit: String,
        #[arg(long)]
        date: String,
        #[arg(long)]
        dir: PathBuf,
        runs: Vec<PathBuf>,
    },
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s}"))
}

async fn main_result(cli: Cli) -> harness::Result<()> {
    match cli.command {
        Commands::Run {
            n,
            latency_ms,
            operator,
            handler_zip,
            out,
            namespaces,
            create_every,
            concurrency,
            timeout_s,
            faults_url,
            operator_aws_endpoint,
            quotas_file,
            mode,
            work_dir,
            operator_args,
        } => {
            let mut config = harness::RunConfig::new(n, latency_ms, operator, handler_zip);
            config.namespaces = namespaces;
            config.create_every = create_every;
            config.concurrency = concurrency;
            config.ready_timeout = Duration::from_secs(timeout_s);
            config.faults_url = faults_url;
            config.operator_aws_endpoint = operator_aws_endpoint;
            config.extra_operator_args = operator_args;
            config.mode = mode
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            if let Some(path) = quotas_file {
                config.quotas = Some(serde_json::from_str(&std::fs::read_to_string(path)?)?);
            }
            if let Some(dir) = work_dir {
                config.work_dir = dir;
            }
            eprintln!(
                "bench: N={n}, latency {latency_ms} ms, operator log {}",
                config.work_dir.join("operator.log").display()
            );
            let result = harness::run(&config).await?;
            let text = serde_json::to_string_pretty(&result)?;
            std::fs::write(&out, text + "\n")?;
            eprintln!(
                "bench: N={n}, latency {latency_ms} ms: all Ready in {} s (p50 {} s, p95 {} s), create {:?}/object, steady {:?}/object, peak RSS {} MiB, CPU {} s",
                result.ready_all_s,
                result.ready_p50_s,
                result.ready_p95_s,
                result.create_calls_per_object,
                result.steady_calls_per_object,
                result.peak_rss_mib,
                result.cpu_s
            );
            Ok(())
        }
        Commands::Report {
            commit,
            date,
            dir,
            runs,
        } => {
            let mut results = Vec::new();
            for path in runs {
                let text = std::fs::read_to_string(&path)?;
                results.push(serde_json::from_str::<harness::RunResult>(&text)?);
            }
            let report = harness::report(&commit, &date, &results)?;
            let (json_path, md_path) = harness::write_results(&dir, &report)?;
            println!("{}", json_path.display());
            println!("{}", md_path.display());
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_result(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err}");
            ExitCode::FAILURE
        }
    }
}
