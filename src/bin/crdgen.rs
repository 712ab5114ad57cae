//! Writes the PrivateApi CRD generated from the Rust types: to the path given as the only argument,
//! or to standard output.

use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match privateapi_operator::crd_yaml() {
        Ok(yaml) => yaml,
        Err(err) => {
            eprintln!("crdgen: cannot serialize the CRD: {err}");
            return ExitCode::FAILURE;
        }
    };
    match std::env::args().nth(1) {
        Some(path) => {
            if let Err(err) = std::fs::write(&path, yaml) {
                eprintln!("crdgen: cannot write {path}: {err}");
                return ExitCode::FAILURE;
            }
        }
        None => print!("{yaml}"),
    }
    ExitCode::SUCCESS
}
