use super::decision::with_jitter;
use super::fold::{combine, dependency, waits_for_aws};
use crate::conditions::{PartState, reason};
use std::time::Duration;

#[test]
fn combine_reports_the_first_problem() {
    let ok = PartState::ready("Available", "fine");
    let updating = PartState::not_ready("Updating", "function updating");
    assert_eq!(
        combine(&[ok.clone(), updating.clone(), ok.clone()]),
        updating
    );
    assert_eq!(combine(&[ok.clone(), ok.clone()]), ok);
}

#[test]
fn only_parts_waiting_for_aws_count_as_waiting() {
    assert!(waits_for_aws(&PartState::not_ready(
        reason::PENDING,
        "vpce pending"
    )));
    assert!(waits_for_aws(&PartState::not_ready(
        reason::UPDATING,
        "function updating"
    )));
    assert!(!waits_for_aws(&PartState::not_ready(
        reason::INVALID_SPEC,
        "bad"
    )));
    assert!(!waits_for_aws(&dependency("waiting for the REST API")));
    assert!(!waits_for_aws(&PartState::ready(reason::AVAILABLE, "ok")));
}

#[test]
fn jitter_stays_within_ten_percent() {
    for i in 0..50 {
        let d = with_jitter(Duration::from_secs(100), &format!("ns/o{i}"));
        assert!(
            d >= Duration::from_secs(100) && d <= Duration::from_secs(110),
            "{d:?}"
        );
    }
}
