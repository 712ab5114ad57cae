//! Lambda function ARNs.

/// The parts of a Lambda function ARN: `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
    pub qualifier: Option<String>,
}

pub fn parse_function_arn(arn: &str) -> Option<FunctionArn> {
    let parts: Vec<&str> = arn.split(':').collect();
    if !(7..=8).contains(&parts.len())
        || parts[0] != "arn"
        || parts[2] != "lambda"
        || parts[5] != "function"
        || parts[1].is_empty()
        || parts[3].is_empty()
        || parts[6].is_empty()
    {
        return None;
    }
    Some(FunctionArn {
        partition: parts[1].to_string(),
        region: parts[3].to_string(),
        account: parts[4].to_string(),
        name: parts[6].to_string(),
        qualifier: parts.get(7).map(|q| q.to_string()),
    })
}

#[cfg(test)]
mod tests;
