//! `bootstrap`: the Lambda custom-runtime entry point (runtime `provided.al2023`).
//!
//! Builds the response once, then serves invocations from the Lambda Runtime API one at a time
//! on a single-threaded tokio runtime (a Lambda execution environment never runs two at once).

use std::process::ExitCode;

use lambda_runtime::{Diagnostic, LambdaEvent, Runtime, service_fn};
use privateapi_handler::{Handler, missing_runtime_env};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // lambda_runtime panics on a missing variable; say what is wrong instead.
    let missing = missing_runtime_env(|name| std::env::var(name).ok());
    if !missing.is_empty() {
        eprintln!(
            "bootstrap: not in a Lambda execution environment (missing {}): run it under AWS Lambda \
             or the Lambda Runtime Interface Emulator",
            missing.join(", ")
        );
        return ExitCode::FAILURE;
    }

    let handler: &'static Handler = match Handler::from_env() {
        Ok(handler) => Box::leak(Box::new(handler)),
        Err(err) => {
            eprintln!("bootstrap: {err}");
            return ExitCode::FAILURE;
        }
    };

    // The payload is taken as raw JSON and parsed by the handler, so that an event of the wrong
    // shape gets the handler's own error (errorType InvalidEvent) rather than the runtime's.
    let service = service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        handler.handle(event.payload.get()).map_err(|err| {
            // One line in the function's log (CloudWatch), as the caller gets it.
            eprintln!(
                "bootstrap: request {}: InvalidEvent: {err}",
                event.context.request_id
            );
            Diagnostic::from(err)
        })
    });

    match Runtime::new(service).run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bootstrap: Lambda runtime error: {err}");
            ExitCode::FAILURE
        }
    }
}
