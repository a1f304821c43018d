//! Listing the policies xacct may have written to in an account, for garbage collection.

use super::error::AwsError;

const NONE: &[&str] = &[];

/// Buckets of the account whose home region is `region`.
pub(super) async fn buckets(
    client: &aws_sdk_s3::Client,
    account_id: &str,
    region: &str,
) -> Result<Vec<String>, AwsError> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_buckets()
            .bucket_region(region)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "s3:ListBuckets", account_id, NONE))?;
        names.extend(
            out.buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_string)),
        );
        match out.continuation_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(names),
        }
    }
}

/// Repositories of the account in the client's region.
pub(super) async fn repositories(
    client: &aws_sdk_ecr::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .describe_repositories()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "ecr:DescribeRepositories", account_id, NONE))?;
        names.extend(
            out.repositories()
                .iter()
                .filter_map(|r| r.repository_name().map(str::to_string)),
        );
        match out.next_token() {
            Some(next) => token = Some(next.to_string()),
            None => return Ok(names),
        }
    }
}

/// Key ids and ARNs of the account in the client's region.
pub(super) async fn keys(
    client: &aws_sdk_kms::Client,
    account_id: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let mut keys = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .list_keys()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "kms:ListKeys", account_id, NONE))?;
        keys.extend(
            out.keys()
                .iter()
                .filter_map(|k| Some((k.key_id()?.to_string(), k.key_arn()?.to_string()))),
        );
        match (out.truncated(), out.next_marker()) {
            (true, Some(next)) => marker = Some(next.to_string()),
            _ => return Ok(keys),
        }
    }
}

/// Names and ARNs of the account's roles.
pub(super) async fn roles(
    client: &aws_sdk_iam::Client,
    account_id: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let mut roles = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .list_roles()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "iam:ListRoles", account_id, NONE))?;
        roles.extend(
            out.roles()
                .iter()
                .map(|r| (r.role_name().to_string(), r.arn().to_string())),
        );
        match (out.is_truncated(), out.marker()) {
            (true, Some(next)) => marker = Some(next.to_string()),
            _ => return Ok(roles),
        }
    }
}

/// Names and ARNs of the account's users.
pub(super) async fn users(
    client: &aws_sdk_iam::Client,
    account_id: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let mut users = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .list_users()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "iam:ListUsers", account_id, NONE))?;
        users.extend(
            out.users()
                .iter()
                .map(|u| (u.user_name().to_string(), u.arn().to_string())),
        );
        match (out.is_truncated(), out.marker()) {
            (true, Some(next)) => marker = Some(next.to_string()),
            _ => return Ok(users),
        }
    }
}

/// URLs of the account's queues in the client's region.
pub(super) async fn queues(
    client: &aws_sdk_sqs::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    let mut urls = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_queues()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "sqs:ListQueues", account_id, NONE))?;
        urls.extend(out.queue_urls().iter().cloned());
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(urls),
        }
    }
}

/// ARNs of the account's topics in the client's region.
pub(super) async fn topics(
    client: &aws_sdk_sns::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_topics()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "sns:ListTopics", account_id, NONE))?;
        arns.extend(
            out.topics()
                .iter()
                .filter_map(|t| t.topic_arn().map(str::to_string)),
        );
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(arns),
        }
    }
}

/// ARNs of the account's secrets in the client's region.
pub(super) async fn secrets(
    client: &aws_sdk_secretsmanager::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_secrets()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "secretsmanager:ListSecrets", account_id, NONE))?;
        arns.extend(
            out.secret_list()
                .iter()
                .filter_map(|s| s.arn().map(str::to_string)),
        );
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(arns),
        }
    }
}

/// ARNs of the account's functions in the client's region.
pub(super) async fn functions(
    client: &aws_sdk_lambda::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    let mut arns = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .list_functions()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "lambda:ListFunctions", account_id, NONE))?;
        arns.extend(
            out.functions()
                .iter()
                .filter_map(|f| f.function_arn().map(str::to_string)),
        );
        match out.next_marker() {
            Some(next) if !next.is_empty() => marker = Some(next.to_string()),
            _ => return Ok(arns),
        }
    }
}

/// Names and ARNs of the account's event buses in the client's region.
pub(super) async fn event_buses(
    client: &aws_sdk_eventbridge::Client,
    account_id: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let mut buses = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_event_buses()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "events:ListEventBuses", account_id, NONE))?;
        buses.extend(
            out.event_buses()
                .iter()
                .filter_map(|b| Some((b.name()?.to_string(), b.arn()?.to_string()))),
        );
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(buses),
        }
    }
}
