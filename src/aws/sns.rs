//! SNS topic policies: the topic's `Policy` attribute. A topic always has one (SNS writes a
//! default policy for the owner when it creates the topic), so it is rewritten, never removed.

use aws_sdk_sns::Client;

use super::error::AwsError;

const NOT_FOUND: &[&str] = &["NotFound", "NotFoundException"];
const POLICY: &str = "Policy";

pub(super) async fn read(
    client: &Client,
    account_id: &str,
    topic_arn: &str,
) -> Result<Option<String>, AwsError> {
    let out = client
        .get_topic_attributes()
        .topic_arn(topic_arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "sns:GetTopicAttributes", account_id, NOT_FOUND))?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(POLICY))
        .filter(|p| !p.trim().is_empty())
        .cloned())
}

pub(super) async fn write(
    client: &Client,
    account_id: &str,
    topic_arn: &str,
    policy: &str,
) -> Result<(), AwsError> {
    client
        .set_topic_attributes()
        .topic_arn(topic_arn)
        .attribute_name(POLICY)
        .attribute_value(policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "sns:SetTopicAttributes", account_id, NOT_FOUND))
}
