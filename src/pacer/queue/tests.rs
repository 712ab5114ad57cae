use std::sync::{Arc, Mutex};

use crate::pacer::Priority;
use crate::pacer::tests::{pacer, tag};

#[tokio::test]
async fn foreground_goes_first_and_namespaces_take_turns() {
    // CreateDeployment at ×100: one token every ~52 ms.
    let p = Arc::new(pacer(1.0, 100.0));
    let t = tag("API Gateway", "CreateDeployment");
    // Hold the bucket empty while the callers queue: take its token, then queue them all
    // before the next one comes (each queues at once, in order).
    p.acquire(&t).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let callers = [
        ("busy", Priority::Background),
        ("busy", Priority::Foreground),
        ("busy", Priority::Foreground),
        ("busy", Priority::Foreground),
        ("quiet", Priority::Foreground),
    ];
    let mut receivers = Vec::new();
    {
        let bucket = p
            .buckets_of(&t)
            .into_iter()
            .next()
            .expect("the operation's bucket");
        for (i, (namespace, priority)) in callers.into_iter().enumerate() {
            let receiver = bucket
                .take_or_queue(priority, namespace)
                .expect("queued: the bucket is empty");
            receivers.push((i, receiver));
        }
    }
    let mut tasks = Vec::new();
    for (i, receiver) in receivers {
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            receiver.await.expect("served");
            order.lock().expect("lock").push(i);
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    // busy#1, then quiet (its namespace's turn) before busy's second and third; the
    // background call last.
    assert_eq!(*order.lock().expect("lock"), vec![1, 4, 2, 3, 0]);
}
