//! `package-handler`: writes the deployable Lambda zip of a `bootstrap` binary.
//!
//! ```text
//! package-handler --binary <path> [--arch x86_64|arm64] --out <dir> [--max-glibc 2.34|none]
//! ```
//!
//! Writes `<dir>/privateapi-handler-<arch>.zip` (the single entry `bootstrap`, mode 0755, fixed
//! timestamp: byte-identical for the same binary) and `<dir>/privateapi-handler-<arch>.json`
//! (arch, zip name, `code_sha256` as Lambda's CodeSha256, size, ...). The architecture is read
//! from the binary's ELF header; `--arch`, if given, must agree. A binary needing a glibc newer
//! than `--max-glibc` (default 2.34, that of provided.al2023) is refused.

use std::path::PathBuf;
use std::process::ExitCode;

use privateapi_handler::package::{AL2023_GLIBC, Arch, GlibcVersion, package};

const USAGE: &str = "usage: package-handler --binary <path> [--arch x86_64|arm64] --out <dir> \
                     [--max-glibc <version>|none]";

struct Args {
    binary: PathBuf,
    arch: Option<Arch>,
    out: PathBuf,
    max_glibc: Option<GlibcVersion>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut binary, mut arch, mut out) = (None, None, None);
    let mut max_glibc = Some(AL2023_GLIBC);
    while let Some(flag) = args.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (flag, None),
        };
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--binary" => binary = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            "--arch" => {
                arch = Some(
                    Arch::parse(&value)
                        .ok_or_else(|| format!("unknown --arch {value:?} (x86_64 or arm64)"))?,
                );
            }
            "--max-glibc" => {
                max_glibc = match value.as_str() {
                    "none" => None,
                    v => Some(
                        GlibcVersion::parse(v)
                            .ok_or_else(|| format!("bad --max-glibc {v:?} (e.g. 2.34, or none)"))?,
                    ),
                };
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        binary: binary.ok_or("--binary is required")?,
        arch,
        out: out.ok_or("--out is required")?,
        max_glibc,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("package-handler: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match package(&args.binary, args.arch, &args.out, args.max_glibc) {
        Ok(p) => {
            println!("zip:         {}", p.zip_path.display());
            println!("manifest:    {}", p.manifest_path.display());
            println!("arch:        {}", p.arch);
            println!("CodeSha256:  {}", p.code_sha256);
            println!("zip size:    {} bytes", p.zip_size);
            println!("binary size: {} bytes", p.binary_size);
            match p.glibc {
                Some(v) => println!("glibc:       >= {v} (provided.al2023 has {AL2023_GLIBC})"),
                None => println!("glibc:       none (static binary)"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("package-handler: {e}");
            ExitCode::FAILURE
        }
    }
}
