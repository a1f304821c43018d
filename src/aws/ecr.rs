//! ECR repository policies.

use aws_sdk_ecr::Client;
use aws_sdk_ecr::operation::get_repository_policy::GetRepositoryPolicyError;

use super::error::AwsError;

const NOT_FOUND: &[&str] = &["RepositoryNotFoundException"];

pub(super) async fn read(
    client: &Client,
    account_id: &str,
    repository: &str,
) -> Result<Option<String>, AwsError> {
    let result = client
        .get_repository_policy()
        .registry_id(account_id)
        .repository_name(repository)
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.policy_text().map(str::to_string)),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetRepositoryPolicyError::RepositoryPolicyNotFoundException(
                    _
                ))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(AwsError::from_sdk(
            &e,
            "ecr:GetRepositoryPolicy",
            account_id,
            NOT_FOUND,
        )),
    }
}

pub(super) async fn write(
    client: &Client,
    account_id: &str,
    repository: &str,
    policy: &str,
) -> Result<(), AwsError> {
    client
        .set_repository_policy()
        .registry_id(account_id)
        .repository_name(repository)
        .policy_text(policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "ecr:SetRepositoryPolicy", account_id, NOT_FOUND))
}

pub(super) async fn delete(
    client: &Client,
    account_id: &str,
    repository: &str,
) -> Result<(), AwsError> {
    match client
        .delete_repository_policy()
        .registry_id(account_id)
        .repository_name(repository)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_policy_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(AwsError::from_sdk(
            &e,
            "ecr:DeleteRepositoryPolicy",
            account_id,
            NOT_FOUND,
        )),
    }
}
