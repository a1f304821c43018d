//! Listing the policies xacct may have written to in an account, for garbage collection.

use std::future::Future;

use super::error::AwsError;

const NONE: &[&str] = &[];

/// Every item of a listing answered a page at a time: `page(token)` gives one page's items and
/// the token of the next page (none, or empty, after the last).
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, AwsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), AwsError>>,
{
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let (mut found, next) = page(token.take()).await?;
        items.append(&mut found);
        match next.filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok(items),
        }
    }
}

/// The next marker of a listing that says whether it was cut short (IAM, KMS).
fn marker_if(truncated: bool, marker: Option<&str>) -> Option<String> {
    marker.filter(|_| truncated).map(str::to_string)
}

/// Buckets of the account whose home region is `region`.
pub(super) async fn buckets(
    client: &aws_sdk_s3::Client,
    account_id: &str,
    region: &str,
) -> Result<Vec<String>, AwsError> {
    all_pages(|token| async move {
        let out = client
            .list_buckets()
            .bucket_region(region)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "s3:ListBuckets", account_id, NONE))?;
        let names = out
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect();
        Ok((names, out.continuation_token().map(str::to_string)))
    })
    .await
}

/// Repositories of the account in the client's region.
pub(super) async fn repositories(
    client: &aws_sdk_ecr::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    all_pages(|token| async move {
        let out = client
            .describe_repositories()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "ecr:DescribeRepositories", account_id, NONE))?;
        let names = out
            .repositories()
            .iter()
            .filter_map(|r| r.repository_name().map(str::to_string))
            .collect();
        Ok((names, out.next_token().map(str::to_string)))
    })
    .await
}

/// Key ids and ARNs of the account in the client's region.
pub(super) async fn keys(
    client: &aws_sdk_kms::Client,
    account_id: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    all_pages(|marker| async move {
        let out = client
            .list_keys()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "kms:ListKeys", account_id, NONE))?;
        let keys = out
            .keys()
            .iter()
            .filter_map(|k| Some((k.key_id()?.to_string(), k.key_arn()?.to_string())))
            .collect();
        Ok((keys, marker_if(out.truncated(), out.next_marker())))
    })
    .await
}

/// Names and ARNs of the account's roles.
pub(super) async fn roles(
    client: &aws_sdk_iam::Client,
    account_id: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    all_pages(|marker| async move {
        let out = client
            .list_roles()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "iam:ListRoles", account_id, NONE))?;
        let roles = out
            .roles()
            .iter()
            .map(|r| (r.role_name().to_string(), r.arn().to_string()))
            .collect();
        Ok((roles, marker_if(out.is_truncated(), out.marker())))
    })
    .await
}

/// Names and ARNs of the account's users.
pub(super) async fn users(
    client: &aws_sdk_iam::Client,
    account_id: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    all_pages(|marker| async move {
        let out = client
            .list_users()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "iam:ListUsers", account_id, NONE))?;
        let users = out
            .users()
            .iter()
            .map(|u| (u.user_name().to_string(), u.arn().to_string()))
            .collect();
        Ok((users, marker_if(out.is_truncated(), out.marker())))
    })
    .await
}

/// URLs of the account's queues in the client's region.
pub(super) async fn queues(
    client: &aws_sdk_sqs::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    all_pages(|token| async move {
        let out = client
            .list_queues()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "sqs:ListQueues", account_id, NONE))?;
        let urls = out.queue_urls().to_vec();
        Ok((urls, out.next_token().map(str::to_string)))
    })
    .await
}

/// ARNs of the account's topics in the client's region.
pub(super) async fn topics(
    client: &aws_sdk_sns::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    all_pages(|token| async move {
        let out = client
            .list_topics()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "sns:ListTopics", account_id, NONE))?;
        let arns = out
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn().map(str::to_string))
            .collect();
        Ok((arns, out.next_token().map(str::to_string)))
    })
    .await
}

/// ARNs of the account's secrets in the client's region.
pub(super) async fn secrets(
    client: &aws_sdk_secretsmanager::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    all_pages(|token| async move {
        let out = client
            .list_secrets()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "secretsmanager:ListSecrets", account_id, NONE))?;
        let arns = out
            .secret_list()
            .iter()
            .filter_map(|s| s.arn().map(str::to_string))
            .collect();
        Ok((arns, out.next_token().map(str::to_string)))
    })
    .await
}

/// ARNs of the account's functions in the client's region.
pub(super) async fn functions(
    client: &aws_sdk_lambda::Client,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    all_pages(|marker| async move {
        let out = client
            .list_functions()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "lambda:ListFunctions", account_id, NONE))?;
        let arns = out
            .functions()
            .iter()
            .filter_map(|f| f.function_arn().map(str::to_string))
            .collect();
        Ok((arns, out.next_marker().map(str::to_string)))
    })
    .await
}

/// Names and ARNs of the account's event buses in the client's region.
pub(super) async fn event_buses(
    client: &aws_sdk_eventbridge::Client,
    account_id: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    all_pages(|token| async move {
        let out = client
            .list_event_buses()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "events:ListEventBuses", account_id, NONE))?;
        let buses = out
            .event_buses()
            .iter()
            .filter_map(|b| Some((b.name()?.to_string(), b.arn()?.to_string())))
            .collect();
        Ok((buses, out.next_token().map(str::to_string)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_page_is_read_until_no_token_or_an_empty_one() {
        for last in [None, Some(String::new())] {
            let mut asked = Vec::new();
            let items = all_pages(|token: Option<String>| {
                asked.push(token.clone());
                let page = match token.as_deref() {
                    None => (vec![1, 2], Some("b".to_string())),
                    Some("b") => (vec![3], Some("c".to_string())),
                    _ => (vec![4], last.clone()),
                };
                async move { Ok::<_, AwsError>(page) }
            })
            .await
            .expect("pages");
            assert_eq!(items, [1, 2, 3, 4]);
            assert_eq!(asked, [None, Some("b".into()), Some("c".into())]);
        }
    }

    #[test]
    fn a_marker_counts_only_when_the_listing_was_cut_short() {
        assert_eq!(marker_if(true, Some("m")), Some("m".into()));
        assert_eq!(marker_if(false, Some("m")), None);
        assert_eq!(marker_if(true, None), None);
    }
}
