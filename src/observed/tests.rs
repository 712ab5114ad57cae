use std::collections::BTreeSet;
use std::time::Duration;

use super::*;

#[test]
fn deep_checks_come_every_nth_turn_at_each_objects_phase() {
    let observations = Observations::new(Duration::from_secs(60), 5);
    let mut deep_turns_per_object = Vec::new();
    let mut first_deep = BTreeSet::new();
    for i in 0..40 {
        let key = format!("ns/o{i}");
        let deep: Vec<u32> = (1..=20)
            .filter(|_| observations.next_check_is_deep(&key))
            .collect();
        deep_turns_per_object.push(deep.len());
        first_deep.insert(
            (1..=5)
                .find(|turn| {
                    let observations = Observations::new(Duration::from_secs(60), 5);
                    (1..*turn).for_each(|_| {
                        observations.next_check_is_deep(&key);
                    });
                    observations.next_check_is_deep(&key)
                })
                .unwrap_or(0),
        );
    }
    // 20 checks at N = 5: 4 deep ones for every object ...
    assert!(
        deep_turns_per_object.iter().all(|n| *n == 4),
        "{deep_turns_per_object:?}"
    );
    // ... not all at the same turn.
    assert!(first_deep.len() > 1, "{first_deep:?}");
    let every = Observations::new(Duration::from_secs(60), 1);
    assert!((0..3).all(|_| every.next_check_is_deep("ns/x")));
}
