//! SageMaker endpoints: only checked to exist (they have no resource policy).

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::error::ProvideErrorMetadata;

use super::error::{AwsError, AwsErrorKind};

/// The endpoint's ARN; `NotFound` when there is no such endpoint.
pub(super) async fn endpoint_arn(
    client: &Client,
    account_id: &str,
    name: &str,
) -> Result<String, AwsError> {
    match client.describe_endpoint().endpoint_name(name).send().await {
        Ok(out) => Ok(out.endpoint_arn().unwrap_or_default().to_string()),
        // SageMaker answers a missing endpoint with a ValidationException ("Could not find endpoint").
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.code() == Some("ValidationException")
                    && s.message().is_some_and(|m| m.contains("Could not find"))
            }) =>
        {
            Err(AwsError::new(
                AwsErrorKind::NotFound,
                "sagemaker:DescribeEndpoint",
                account_id,
                format!("there is no SageMaker endpoint named {name:?}"),
            ))
        }
        Err(e) => Err(AwsError::from_sdk(
            &e,
            "sagemaker:DescribeEndpoint",
            account_id,
            &["ResourceNotFound"],
        )),
    }
}
