use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

#[tokio::test]
async fn single_flight_serves_one_listing_per_window() {
    let flight = Arc::new(SingleFlight::<u32>::default());
    let fetches = Arc::new(Mutex::new(0u32));
    let window = Duration::from_secs(3);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (flight, fetches) = (flight.clone(), fetches.clone());
        tasks.push(tokio::spawn(async move {
            flight
                .get(window, || async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let mut n = fetches.lock().expect("lock");
                    *n += 1;
                    Ok(*n)
                })
                .await
                .expect("ok")
        }));
    }
    for task in tasks {
        assert_eq!(*task.await.expect("task"), 1);
    }
    tokio::time::sleep(window).await;
    let again = flight.get(window, || async { Ok(99) }).await.expect("ok");
    assert_eq!(*again, 99);
}
