//! The handler's logic on API Gateway REST API proxy events (fixtures in tests/fixtures, shaped
//! as API Gateway sends them to a private REST API's proxy integration) and on malformed events.
//! No test bed needed.

use crate::fixture;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use privateapi_handler::{
    DEFAULT_MESSAGE, Handler, INVALID_EVENT_ERROR_TYPE, InitError, message_from,
    missing_runtime_env, parse_event,
};
use serde_json::{Value, json};

const FIXTURES: [&str; 7] = [
    "root.json",
    "proxy-path.json",
    "query-string.json",
    "post-json-body.json",
    "base64-body.json",
    "stage-prefix-in-path.json",
    "console-test-invoke.json",
];

/// Checks a serialized response: 200, JSON content type, body {"message": message}.
fn assert_response(raw: &str, message: &str) {
    let v: Value = serde_json::from_str(raw).expect("response is JSON");
    assert_eq!(v["statusCode"], 200, "{raw}");
    assert_eq!(v["headers"]["content-type"], "application/json", "{raw}");
    assert_eq!(v["isBase64Encoded"], false, "{raw}");
    let body: Value =
        serde_json::from_str(v["body"].as_str().expect("body is a string")).expect("body is JSON");
    assert_eq!(body, json!({ "message": message }), "{raw}");

    // And it is what aws_lambda_events itself reads as a proxy response.
    let typed: ApiGatewayProxyResponse = serde_json::from_str(raw).expect("typed response");
    assert_eq!(typed.status_code, 200);
    assert_eq!(
        typed.headers.get("Content-Type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let Some(Body::Text(text)) = typed.body else {
        panic!("text body expected: {raw}")
    };
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("JSON body"),
        json!({ "message": message })
    );
}

#[test]
fn every_fixture_gets_the_default_message() {
    let handler = Handler::new(DEFAULT_MESSAGE).expect("handler");
    for name in FIXTURES {
        let response = handler
            .handle(&fixture(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_response(response.get(), "Private API executed!!");
    }
}

#[test]
fn fixtures_parse_as_the_events_they_are() {
    let root = parse_event(&fixture("root.json")).expect("root");
    assert_eq!(root.path.as_deref(), Some("/"));
    assert_eq!(root.request_context.path.as_deref(), Some("/prod/"));
    assert_eq!(
        root.request_context.identity.source_ip.as_deref(),
        Some("10.0.1.23")
    );

    let proxy = parse_event(&fixture("proxy-path.json")).expect("proxy");
    assert_eq!(proxy.resource.as_deref(), Some("/{proxy+}"));
    assert_eq!(
        proxy.path_parameters.get("proxy").map(String::as_str),
        Some("orders/42/items")
    );

    let query = parse_event(&fixture("query-string.json")).expect("query");
    assert_eq!(
        query.query_string_parameters.first("q"),
        Some("private api")
    );
    assert_eq!(
        query.multi_value_query_string_parameters.all("page"),
        Some(vec!["1", "2"])
    );

    let post = parse_event(&fixture("post-json-body.json")).expect("post");
    assert_eq!(post.http_method.as_str(), "POST");
    assert!(post.body.as_deref().is_some_and(|b| b.contains("widget")));

    let b64 = parse_event(&fixture("base64-body.json")).expect("base64");
    assert!(b64.is_base64_encoded);
    assert_eq!(b64.http_method.as_str(), "PUT");

    let staged = parse_event(&fixture("stage-prefix-in-path.json")).expect("stage prefix");
    assert_eq!(staged.path.as_deref(), Some("/prod/orders/42"));

    let console = parse_event(&fixture("console-test-invoke.json")).expect("console");
    assert!(console.headers.is_empty(), "null headers read as empty");
    assert_eq!(
        console.request_context.stage.as_deref(),
        Some("test-invoke-stage")
    );
}

#[test]
fn any_method_is_answered() {
    let handler = Handler::new(DEFAULT_MESSAGE).expect("handler");
    let base: Value = serde_json::from_str(&fixture("proxy-path.json")).expect("fixture");
    for method in [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ] {
        let mut event = base.clone();
        event["httpMethod"] = json!(method);
        event["requestContext"]["httpMethod"] = json!(method);
        let response = handler
            .handle(&event.to_string())
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_response(response.get(), DEFAULT_MESSAGE);
    }
}

#[test]
fn message_override() {
    for message in [
        "Hello from the private API",
        "",
        "quotes \" and \\ backslashes, a\nnewline, </script> and unicode: héllo ✓ 🚀",
    ] {
        let handler = Handler::new(message).expect("handler");
        for name in FIXTURES {
            let response = handler
                .handle(&fixture(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_response(response.get(), message);
        }
    }
}

#[test]
fn message_from_environment_value() {
    assert_eq!(message_from(None).as_deref(), Ok(DEFAULT_MESSAGE));
    assert_eq!(message_from(Some("hi".into())).as_deref(), Ok("hi"));
    assert_eq!(message_from(Some("".into())).as_deref(), Ok(""));
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let bad = std::ffi::OsString::from_vec(vec![0x66, 0x6f, 0xff]);
        assert_eq!(message_from(Some(bad)), Err(InitError::MessageNotUnicode));
    }
}

#[test]
fn the_response_is_built_once() {
    let handler = Handler::new("once").expect("handler");
    let a = handler.handle(&fixture("root.json")).expect("a");
    let b = handler.handle(&fixture("proxy-path.json")).expect("b");
    assert!(std::ptr::eq(a, b), "the same prebuilt response every time");
    assert_eq!(a.get(), handler.response_json());
}

#[test]
fn malformed_events_get_a_clear_error() {
    let handler = Handler::new(DEFAULT_MESSAGE).expect("handler");
    let root: Value = serde_json::from_str(&fixture("root.json")).expect("fixture");
    let without = |pointer: &str, key: &str| {
        let mut v = root.clone();
        if let Some(obj) = v.pointer_mut(pointer).and_then(Value::as_object_mut) {
            obj.remove(key);
        }
        v.to_string()
    };
    let with = |key: &str, value: Value| {
        let mut v = root.clone();
        v[key] = value;
        v.to_string()
    };
    let http_api_v2 = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": {"host": "example.com"},
        "requestContext": {"http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1",
            "sourceIp": "10.0.0.1", "userAgent": "curl"}, "stage": "$default"},
        "isBase64Encoded": false
    })
    .to_string();
    let s3 = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]})
        .to_string();

    // (event, what the message must mention)
    let cases: Vec<(String, &str)> = vec![
        ("{}".into(), "missing field `httpMethod`"),
        ("[]".into(), "the event is an array, not a JSON object"),
        ("null".into(), "the event is null, not a JSON object"),
        (
            "\"GET /\"".into(),
            "the event is a string, not a JSON object",
        ),
        ("42".into(), "the event is a number, not a JSON object"),
        (" true".into(), "the event is a boolean, not a JSON object"),
        ("".into(), "EOF while parsing"),
        (without("", "httpMethod"), "missing field `httpMethod`"),
        (
            without("", "requestContext"),
            "missing field `requestContext`",
        ),
        (
            without("/requestContext", "httpMethod"),
            "requestContext: missing field `httpMethod`",
        ),
        (
            with("httpMethod", json!(5)),
            "httpMethod: invalid type: integer",
        ),
        (with("httpMethod", json!("GET /x")), "httpMethod"),
        (with("headers", json!(["a"])), "headers"),
        (with("isBase64Encoded", json!("yes")), "isBase64Encoded"),
        (with("requestContext", json!("ctx")), "requestContext"),
        (http_api_v2, "HTTP API payload format 2.0"),
        (s3, "missing field `httpMethod`"),
        ("{\"httpMethod\": \"GET\"".into(), "EOF"),
        (
            format!("{} trailing", fixture("root.json")),
            "trailing characters",
        ),
        ("not json".into(), "expected"),
    ];
    for (event, needle) in cases {
        let err = handler
            .handle(&event)
            .expect_err(&format!("must be rejected: {event}"));
        let msg = err.to_string();
        assert!(
            msg.starts_with("expected an API Gateway REST API proxy event (payload format 1.0): "),
            "{msg}"
        );
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, INVALID_EVENT_ERROR_TYPE);
        assert_eq!(diagnostic.error_message, msg);
    }
}

#[test]
fn runtime_environment_check() {
    let all = |name: &str| match name {
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("128".to_owned()),
        _ => Some("x".to_owned()),
    };
    assert!(missing_runtime_env(all).is_empty());
    assert_eq!(
        missing_runtime_env(|_| None),
        [
            "AWS_LAMBDA_RUNTIME_API",
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
        ]
    );
    let bad_memory = |name: &str| {
        Some(
            if name.ends_with("MEMORY_SIZE") {
                "lots"
            } else {
                "x"
            }
            .to_owned(),
        )
    };
    assert_eq!(
        missing_runtime_env(bad_memory),
        ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE (an integer)"]
    );
}
