use crate::pacer::Pacer;
use crate::pacer::tests::{pacer, tag};

/// (current, configured) rate of Lambda's total bucket, and all rates for the failure message.
fn lambda_total(p: &Pacer) -> ((f64, f64), String) {
    let rates = p.rates();
    let total = rates
        .iter()
        .find(|r| r.0 == "Lambda" && r.1 == "*")
        .expect("bucket");
    ((total.2, total.3), format!("{rates:?}"))
}

#[tokio::test]
async fn throttling_halves_the_rate_and_successes_restore_it() {
    let p = pacer(1.0, 1.0);
    let t = tag("Lambda", "ListFunctions");
    p.acquire(&t).await;
    p.on_answer(&t, true);
    let ((rate, max_rate), rates) = lambda_total(&p);
    assert!((rate - max_rate * 0.5).abs() < 1e-9, "{rates}");
    for _ in 0..100 {
        p.on_answer(&t, false);
    }
    let ((rate, max_rate), rates) = lambda_total(&p);
    assert!((rate - max_rate).abs() < 1e-9, "{rates}");
}
