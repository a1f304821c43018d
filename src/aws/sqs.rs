//! SQS queue policies: the queue's `Policy` attribute.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;

use super::error::AwsError;

const NOT_FOUND: &[&str] = &[
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
];

/// The URL of the queue `name` of `account_id` (what the other calls take).
pub(super) async fn queue_url(
    client: &Client,
    account_id: &str,
    name: &str,
) -> Result<String, AwsError> {
    client
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account_id)
        .send()
        .await
        .map(|out| out.queue_url().unwrap_or_default().to_string())
        .map_err(|e| AwsError::from_sdk(&e, "sqs:GetQueueUrl", account_id, NOT_FOUND))
}

pub(super) async fn read(
    client: &Client,
    account_id: &str,
    url: &str,
) -> Result<Option<String>, AwsError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::Policy)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "sqs:GetQueueAttributes", account_id, NOT_FOUND))?;
    // A queue without a policy has no such attribute (or, once one was removed, an empty one).
    Ok(out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::Policy))
        .filter(|p| !p.trim().is_empty())
        .cloned())
}

pub(super) async fn write(
    client: &Client,
    account_id: &str,
    url: &str,
    policy: &str,
) -> Result<(), AwsError> {
    client
        .set_queue_attributes()
        .queue_url(url)
        .attributes(QueueAttributeName::Policy, policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "sqs:SetQueueAttributes", account_id, NOT_FOUND))
}

/// Removes the policy: SQS takes an empty `Policy` attribute for that.
pub(super) async fn delete(client: &Client, account_id: &str, url: &str) -> Result<(), AwsError> {
    write(client, account_id, url, "").await
}
