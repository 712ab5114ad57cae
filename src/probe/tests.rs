use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::*;

const URL: &str = "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/";

fn answered(status: u16, body: &str, ms: u64) -> Outcome {
    Outcome::Answered {
        status,
        body: body.to_string(),
        latency: Duration::from_millis(ms),
    }
}

#[test]
fn each_outcome_gets_the_reason_a_user_acts_on() {
    let address: SocketAddr = "198.18.0.16:443".parse().expect("address");
    let table: Vec<(Outcome, &str, &str, &str)> = vec![
        (
            answered(200, r#"{"message":"Private API executed!!"}"#, 12),
            "True",
            reason::ANSWERED,
            "answered 200 in under 50 ms",
        ),
        (
            answered(
                403,
                r#"{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:abc123defg/prod/GET/"}"#,
                5,
            ),
            "False",
            reason::FORBIDDEN,
            "User: anonymous is not authorized",
        ),
        (
            answered(403, r#"{"message":"Missing Authentication Token"}"#, 5),
            "False",
            reason::NO_ROUTE,
            "no route for this path",
        ),
        (
            answered(500, r#"{"message": "Internal server error"}"#, 5),
            "False",
            reason::BACKEND_ERROR,
            "invoke permission",
        ),
        (
            answered(502, r#"{"message": "Internal server error"}"#, 5),
            "False",
            reason::BACKEND_ERROR,
            "not a Lambda proxy answer",
        ),
        (
            answered(504, r#"{"message": "Endpoint request timed out"}"#, 5),
            "False",
            reason::BACKEND_ERROR,
            "integration timeout",
        ),
        (
            answered(404, "not here", 5),
            "False",
            reason::UNEXPECTED_STATUS,
            "answered 404 (not here), expected 200",
        ),
        (
            Outcome::NotResolved {
                host: "abc123defg.execute-api.us-east-1.amazonaws.com".into(),
                error: "failed to lookup address information".into(),
            },
            "False",
            reason::NAME_NOT_RESOLVED,
            "does not resolve from the operator's network",
        ),
        (
            Outcome::ConnectTimeout {
                addresses: vec![address],
            },
            "False",
            reason::CONNECT_TIMEOUT,
            "connecting to 198.18.0.16:443 timed out: the VPC endpoint's security groups",
        ),
        (
            Outcome::ConnectFailed {
                address,
                error: "Connection refused".into(),
            },
            "False",
            reason::CONNECTION_FAILED,
            "Connection refused",
        ),
        (
            Outcome::TlsFailed {
                host: "h".into(),
                error: "invalid peer certificate: UnknownIssuer".into(),
            },
            "False",
            reason::TLS_ERROR,
            "UnknownIssuer",
        ),
        (
            Outcome::NoAnswer {
                after: Duration::from_secs(5),
            },
            "False",
            reason::NO_ANSWER,
            "no answer within 5 s",
        ),
    ];
    for (outcome, status, reason, says) in table {
        let got = diagnose(&outcome, URL, 200);
        assert_eq!(
            (got.status, got.reason),
            (status, reason),
            "{outcome:?}: {got:?}"
        );
        assert!(got.message.contains(says), "{outcome:?}: {}", got.message);
    }
}

#[test]
fn the_expected_status_is_the_one_the_spec_names() {
    let got = diagnose(&answered(401, "", 5), URL, 401);
    assert_eq!(got.status, "True");
    let got = diagnose(&answered(200, "", 5), URL, 401);
    assert_eq!(got.reason, reason::UNEXPECTED_STATUS);
}

#[test]
fn latency_goes_in_coarse_classes() {
    let class = |ms| latency_class(Duration::from_millis(ms));
    assert_eq!(class(0), "under 10 ms");
    assert_eq!(class(10), "under 50 ms");
    assert_eq!(class(49), "under 50 ms");
    assert_eq!(class(999), "under 1 s");
    assert_eq!(class(60_000), "10 s or more");
    // Two probes of a steady API say the same thing: nothing to write.
    assert_eq!(
        diagnose(&answered(200, "", 21), URL, 200),
        diagnose(&answered(200, "", 38), URL, 200)
    );
}

fn candidate(key: &str, interval_secs: u64) -> Candidate {
    Candidate {
        key: key.to_string(),
        interval: Duration::from_secs(interval_secs),
    }
}

#[test]
fn an_object_is_probed_at_most_once_per_interval() {
    let start = Instant::now();
    let mut schedule = Schedule::new(100.0, start);
    let objects = [candidate("ns/a", 10), candidate("ns/b", 30)];
    assert_eq!(schedule.take_due(&objects, 10, start), vec!["ns/a", "ns/b"]);
    assert!(
        schedule
            .take_due(&objects, 10, start + Duration::from_secs(9))
            .is_empty()
    );
    assert_eq!(
        schedule.take_due(&objects, 10, start + Duration::from_secs(10)),
        vec!["ns/a"]
    );
    assert_eq!(
        schedule.take_due(&objects, 10, start + Duration::from_secs(30)),
        // b waited longer (probed at 0, a at 10).
        vec!["ns/b", "ns/a"]
    );
}

#[test]
fn the_budget_and_the_slots_hold_back_what_is_due_oldest_first() {
    let start = Instant::now();
    // One probe per second, a burst of one.
    let mut schedule = Schedule::new(1.0, start);
    let objects: Vec<Candidate> = (0..5).map(|i| candidate(&format!("ns/o{i}"), 5)).collect();
    assert_eq!(schedule.take_due(&objects, 10, start), vec!["ns/o0"]);
    assert!(schedule.take_due(&objects, 10, start).is_empty());
    let later = start + Duration::from_secs(1);
    assert_eq!(schedule.take_due(&objects, 10, later), vec!["ns/o1"]);
    // No free slot: nothing starts, and what is due stays due.
    let later = start + Duration::from_secs(2);
    assert!(schedule.take_due(&objects, 0, later).is_empty());
    assert_eq!(schedule.take_due(&objects, 1, later), vec!["ns/o2"]);
    // Ten seconds on: the never probed before the oldest probe (o0).
    let mut schedule_fast = Schedule::new(100.0, start);
    schedule_fast.take_due(&objects[..1], 10, start);
    let later = start + Duration::from_secs(10);
    assert_eq!(
        schedule_fast.take_due(&objects, 2, later),
        vec!["ns/o1", "ns/o2"]
    );
    schedule_fast.retain(|key| key != "ns/o0");
    assert_eq!(schedule_fast.len(), 2);
}

#[test]
fn the_transition_time_moves_only_with_the_status() {
    let at = |s| Timestamp::from_second(s).expect("time");
    let up = diagnose(&answered(200, "", 5), URL, 200);
    let first = condition(None, &up, Some(1), at(10));
    assert_eq!(first.type_, "Reachable");
    assert_eq!(first.last_transition_time, Time(at(10)));
    let slower = diagnose(&answered(200, "", 700), URL, 200);
    let second = condition(Some(&first), &slower, Some(2), at(20));
    assert_eq!(second.last_transition_time, Time(at(10)));
    assert_eq!(second.observed_generation, Some(2));
    assert!(!same(Some(&first), &slower, Some(1)));
    assert!(same(Some(&second), &slower, Some(2)));
    let down = diagnose(&answered(500, "", 5), URL, 200);
    let third = condition(Some(&second), &down, Some(2), at(30));
    assert_eq!(third.last_transition_time, Time(at(30)));
    assert_eq!(third.status, "False");
}
