use super::*;

#[test]
fn function_arns() {
    assert_eq!(
        parse_function_arn("arn:aws:lambda:us-east-1:123456789012:function:existing"),
        Some(FunctionArn {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            name: "existing".into(),
            qualifier: None
        })
    );
    let q = parse_function_arn("arn:aws-cn:lambda:cn-north-1:123456789012:function:f:prod")
        .expect("qualified");
    assert_eq!(
        (q.partition.as_str(), q.qualifier.as_deref()),
        ("aws-cn", Some("prod"))
    );
    assert_eq!(parse_function_arn("arn:aws:iam::123456789012:role/x"), None);
    assert_eq!(parse_function_arn("existing"), None);
}
