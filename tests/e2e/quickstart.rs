//! `make quickstart` as a newcomer runs it, in this test bed: it must end with the reference
//! stack's two commands, the laptop's curl that does not resolve and the VPC's that gets the
//! message.

use std::process::Command;

use crate::support::*;

#[test]
fn the_quickstart_ends_with_the_reference_stacks_two_curls() {
    require_testbed();
    netns::ca();
    install_crd();
    // Its own namespace (watch and Lease), so that it never meets another test's objects.
    let namespace = unique("quickstart");
    create_namespace(&namespace);
    let zip = std::env::var("PAPI_HANDLER_ZIP_X86_64").expect("PAPI_HANDLER_ZIP_X86_64");
    let out = Command::new("bash")
        .arg(repo_path("scripts/quickstart.sh"))
        .current_dir(repo_path(""))
        .env("PAPI_QUICKSTART_NAMESPACE", &namespace)
        .env(
            "PAPI_OPERATOR_BIN",
            env!("CARGO_BIN_EXE_privateapi-operator"),
        )
        .env("PAPI_HANDLER_ZIP_X86_64", zip)
        .output()
        .expect("scripts/quickstart.sh");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    let after = printed
        .split_once("== the reference stack's two commands")
        .map(|(_, after)| after)
        .unwrap_or_else(|| panic!("no two commands: {printed}"));
    let (laptop, vpc) = after
        .split_once("From an instance in the VPC")
        .unwrap_or_else(|| panic!("{after}"));
    assert!(
        laptop.contains("curl: (6) Could not resolve host: "),
        "{after}"
    );
    assert!(
        vpc.lines()
            .any(|l| l == r#"{"message":"Private API executed!!"}"#),
        "{after}"
    );
}
