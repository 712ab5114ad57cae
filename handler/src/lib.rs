//! The built-in Lambda backend of privateapi-operator (`backend.builtin`).
//!
//! For every API Gateway REST API proxy event (payload format 1.0: any method, any path, with or
//! without the stage prefix) it answers `200`, `content-type: application/json`, body
//! `{"message": <MESSAGE>}` where `MESSAGE` comes from the environment variable of that name
//! (default [`DEFAULT_MESSAGE`]).
//!
//! The whole response is serialized once, when the function starts ([`Handler::new`]); an invocation
//! only checks that the event is a REST proxy event and hands back the prebuilt JSON. An event that
//! is not one gets an [`InvalidEvent`] error, which the runtime reports as a function error
//! (`{"errorType": "InvalidEvent", "errorMessage": "..."}`), never a panic.
//!
//! This module is the pure logic (unit-tested); `src/main.rs` wires it to `lambda_runtime`.
//! [`package`] is the deployment zip writer used by the `package-handler` binary.

use std::fmt;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
use serde_json::value::RawValue;

pub mod package;

/// The environment variable that overrides the message.
pub const MESSAGE_ENV: &str = "MESSAGE";

/// The message when [`MESSAGE_ENV`] is not set.
pub const DEFAULT_MESSAGE: &str = "Private API executed!!";

/// `errorType` of the function error returned for an event that is not a REST proxy event.
pub const INVALID_EVENT_ERROR_TYPE: &str = "InvalidEvent";

/// The function's state, built once at init.
#[derive(Debug)]
pub struct Handler {
    /// The complete API Gateway proxy response, already serialized.
    response: Box<RawValue>,
}

impl Handler {
    /// Builds the handler answering with `message`.
    pub fn new(message: &str) -> Result<Self, InitError> {
        let body = serde_json::json!({ "message": message }).to_string();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut response = ApiGatewayProxyResponse::default();
        response.status_code = 200;
        response.headers = headers;
        response.body = Some(Body::Text(body));
        response.is_base64_encoded = false;
        // Cannot fail in practice (text values only), but an error is reported rather than assumed.
        let response = serde_json::to_string(&response)
            .and_then(RawValue::from_string)
            .map_err(|err| InitError::Serialize(err.to_string()))?;
        Ok(Handler { response })
    }

    /// Builds the handler from the environment: `MESSAGE` if set (even to the empty string), else
    /// [`DEFAULT_MESSAGE`]. A `MESSAGE` that is not valid Unicode is an error.
    pub fn from_env() -> Result<Self, InitError> {
        Self::new(&message_from(std::env::var_os(MESSAGE_ENV))?)
    }

    /// The serialized response every valid event gets.
    pub fn response_json(&self) -> &str {
        self.response.get()
    }

    /// Handles one invocation whose payload is the raw JSON `event`.
    pub fn handle(&self, event: &str) -> Result<&RawValue, InvalidEvent> {
        parse_event(event)?;
        Ok(&self.response)
    }
}

/// `MESSAGE`'s value (as `std::env::var_os` gives it) to the message.
pub fn message_from(value: Option<std::ffi::OsString>) -> Result<String, InitError> {
    match value {
        None => Ok(DEFAULT_MESSAGE.to_owned()),
        Some(value) => value
            .into_string()
            .map_err(|_| InitError::MessageNotUnicode),
    }
}

/// Parses `event` as an API Gateway REST API proxy event (payload format 1.0).
///
/// Besides being a JSON object, it must have what API Gateway always sends and another event
/// source doesn't: a valid `httpMethod` and a `requestContext` object (an HTTP API payload 2.0
/// event, for instance, has neither at the top level).
pub fn parse_event(event: &str) -> Result<ApiGatewayProxyRequest, InvalidEvent> {
    // serde would also read a struct from a JSON array of its fields: accept objects only.
    if !event.trim_start().starts_with('{') {
        use serde_json::Value;
        let kind = match serde_json::from_str::<Value>(event) {
            Ok(Value::Array(_)) => "an array",
            Ok(Value::String(_)) => "a string",
            Ok(Value::Number(_)) => "a number",
            Ok(Value::Bool(_)) => "a boolean",
            Ok(Value::Null) => "null",
            Ok(Value::Object(_)) => "an object",
            Err(err) => return Err(invalid(event, err.to_string())),
        };
        return Err(invalid(
            event,
            format!("the event is {kind}, not a JSON object"),
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(event);
    let request: ApiGatewayProxyRequest =
        serde_path_to_error::deserialize(&mut *de).map_err(|err| {
            let path = err.path().to_string();
            if path == "." {
                invalid(event, err.inner().to_string())
            } else {
                invalid(event, format!("{path}: {}", err.inner()))
            }
        })?;
    de.end().map_err(|err| invalid(event, err.to_string()))?;
    Ok(request)
}

fn invalid(event: &str, mut detail: String) -> InvalidEvent {
    // A hint for the one mix-up likely in practice: an HTTP API (payload format 2.0) event.
    let is_v2 = serde_json::from_str::<serde_json::Value>(event)
        .ok()
        .is_some_and(|v| v.get("version").and_then(|v| v.as_str()) == Some("2.0"));
    if is_v2 {
        detail.push_str(
            " (this is an HTTP API payload format 2.0 event; this function serves REST API proxy events)",
        );
    }
    InvalidEvent { detail }
}

/// The event is not an API Gateway REST API proxy event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEvent {
    detail: String,
}

impl fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected an API Gateway REST API proxy event (payload format 1.0): {}",
            self.detail
        )
    }
}

impl std::error::Error for InvalidEvent {}

impl From<InvalidEvent> for lambda_runtime::Diagnostic {
    fn from(err: InvalidEvent) -> Self {
        lambda_runtime::Diagnostic {
            error_type: INVALID_EVENT_ERROR_TYPE.to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// The function cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitError {
    MessageNotUnicode,
    Serialize(String),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::MessageNotUnicode => {
                write!(
                    f,
                    "the {MESSAGE_ENV} environment variable is not valid Unicode"
                )
            }
            InitError::Serialize(err) => write!(f, "cannot serialize the response: {err}"),
        }
    }
}

impl std::error::Error for InitError {}

/// The environment variables `lambda_runtime` requires (it panics without them): Lambda and the
/// Runtime Interface Emulator set them. Returns the missing ones.
pub fn missing_runtime_env(get: impl Fn(&str) -> Option<String>) -> Vec<&'static str> {
    const REQUIRED: [&str; 4] = [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ];
    let mut missing: Vec<&'static str> = REQUIRED
        .into_iter()
        .filter(|name| get(name).is_none())
        .collect();
    let memory = get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
    if memory.is_some_and(|m| m.parse::<i32>().is_err()) {
        missing.push("AWS_LAMBDA_FUNCTION_MEMORY_SIZE (an integer)");
    }
    missing
}
