use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

#[tokio::test]
async fn by_id_lists_lists_all_wanted_ids_once_per_window() {
    let calls = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
    let list = |ids: Vec<String>| {
        let calls = calls.clone();
        async move {
            calls.lock().expect("lock").push(ids.clone());
            Ok(ids
                .into_iter()
                .filter(|id| id != "gone")
                .map(|id| (id.clone(), format!("item {id}")))
                .collect())
        }
    };
    // Long enough for the calls below to fall inside it on a busy machine.
    let window = Duration::from_secs(3);
    let mut by_id = ById::<String>::default();
    assert_eq!(
        refresh(&mut by_id, window, "a", list).await.expect("ok"),
        Some("item a".into())
    );
    // A new ID within the window: listed alone.
    assert_eq!(
        refresh(&mut by_id, window, "b", list).await.expect("ok"),
        Some("item b".into())
    );
    assert_eq!(
        refresh(&mut by_id, window, "gone", list).await.expect("ok"),
        None
    );
    // Known IDs within the window: no call.
    refresh(&mut by_id, window, "a", list).await.expect("ok");
    refresh(&mut by_id, window, "b", list).await.expect("ok");
    assert_eq!(calls.lock().expect("lock").len(), 3);
    // After the window: one call for everything wanted.
    tokio::time::sleep(window).await;
    refresh(&mut by_id, window, "a", list).await.expect("ok");
    refresh(&mut by_id, window, "b", list).await.expect("ok");
    let calls = calls.lock().expect("lock");
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[3], vec!["a".to_string(), "b".into(), "gone".into()]);
    // What was gone is not asked for again.
    assert!(!by_id.wanted.contains("gone"));
}
