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

#[test]
fn a_part_folds_into_its_state_value_and_changes_or_its_error() {
    use super::fold::Gathered;
    use crate::error::Error;
    use crate::parts::{Change, Outcome};

    let mut gathered = Gathered::default();
    let ready = PartState::ready(reason::AVAILABLE, "ok");
    let (state, value) = gathered.part(Ok(Outcome {
        value: 7,
        state: ready.clone(),
        changes: vec![Change::new("Created", "thing", "")],
    }));
    assert_eq!((state, value), (ready, Some(7)));
    let (state, value) = gathered.part::<u8>(Err(Error::InvalidSpec {
        field: "spec.x".into(),
        message: "bad".into(),
    }));
    assert!(!state.ready);
    assert_eq!(state.reason, reason::INVALID_SPEC);
    assert_eq!(value, None);
    assert_eq!(gathered.changes.len(), 1);
    assert_eq!(gathered.errors.len(), 1);
}

#[test]
fn conditions_say_ready_for_the_generation() {
    use super::fold::set_conditions;
    use crate::conditions::{self, READY};
    use crate::crd::PrivateApiStatus;

    let mut status = PrivateApiStatus::default();
    let ok = PartState::ready(reason::AVAILABLE, "ok");
    let pending = PartState::not_ready(reason::PENDING, "vpce pending");
    let parts = [
        (conditions::ENDPOINT_READY, &pending),
        (conditions::DEPLOYED, &ok),
    ];
    let ready = set_conditions(&mut status, &parts, Some(3));
    assert!(!ready.ready);
    assert_eq!(status.observed_generation, Some(3));
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.observed_generation))
    };
    assert_eq!(condition(READY), Some(("False".to_string(), Some(3))));
    assert_eq!(
        condition(conditions::DEPLOYED),
        Some(("True".to_string(), Some(3)))
    );
}
