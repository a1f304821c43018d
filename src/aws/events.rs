//! EventBridge event bus policies. `PutPermission` with a policy replaces the bus's whole policy on
//! AWS; the AWS emulator (moto) merges it into the statements it has instead, keeping any it does
//! not find again. So that both end with exactly the document written, the statements of xacct's
//! that the new document no longer has are removed by statement id first (`RemovePermission`, a
//! call that changes nothing else), then the document is put.

use aws_sdk_eventbridge::Client;

use super::error::{AwsError, AwsErrorKind};
use crate::policy::{PolicyDocument, SID_PREFIX};

const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

/// The bus's name, from its name or its ARN (`…:event-bus/NAME`).
pub(super) fn bus_name(name_or_arn: &str) -> &str {
    name_or_arn
        .rsplit_once(":event-bus/")
        .map_or(name_or_arn, |(_, name)| name)
}

/// The bus `name`: its ARN and its policy (`None` without one); `NotFound` when it does not exist.
async fn describe(
    client: &Client,
    account_id: &str,
    name: &str,
) -> Result<(String, Option<String>), AwsError> {
    let out = client
        .describe_event_bus()
        .name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "events:DescribeEventBus", account_id, NOT_FOUND))?;
    let policy = out
        .policy()
        .filter(|p| !p.trim().is_empty())
        .map(str::to_string);
    Ok((out.arn().unwrap_or(name).to_string(), policy))
}

/// The ARN of the bus `name`; `NotFound` when it does not exist.
pub(super) async fn bus_arn(
    client: &Client,
    account_id: &str,
    name: &str,
) -> Result<String, AwsError> {
    Ok(describe(client, account_id, name).await?.0)
}

pub(super) async fn read(
    client: &Client,
    account_id: &str,
    name: &str,
) -> Result<Option<String>, AwsError> {
    Ok(describe(client, account_id, name).await?.1)
}

pub(super) async fn write(
    client: &Client,
    account_id: &str,
    name: &str,
    policy: &str,
) -> Result<(), AwsError> {
    let wanted = PolicyDocument::parse(policy).map_err(|e| {
        AwsError::new(
            AwsErrorKind::InvalidPolicy,
            "events:PutPermission",
            account_id,
            e.to_string(),
        )
    })?;
    remove_ours_except(client, account_id, name, &wanted).await?;
    if wanted.statements.is_empty() {
        return Ok(());
    }
    client
        .put_permission()
        .event_bus_name(name)
        .policy(policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "events:PutPermission", account_id, NOT_FOUND))
}

/// Removes xacct's statements, one by one (never `RemoveAllPermissions`, which would take others'
/// statements too).
pub(super) async fn delete(client: &Client, account_id: &str, name: &str) -> Result<(), AwsError> {
    remove_ours_except(client, account_id, name, &PolicyDocument::new()).await
}

/// Removes the statements with xacct's Sid marker that `kept` does not have.
async fn remove_ours_except(
    client: &Client,
    account_id: &str,
    name: &str,
    kept: &PolicyDocument,
) -> Result<(), AwsError> {
    let Some(current) = read(client, account_id, name).await? else {
        return Ok(());
    };
    let current = PolicyDocument::parse(&current).map_err(|e| {
        AwsError::new(
            AwsErrorKind::Other,
            "events:DescribeEventBus",
            account_id,
            e.to_string(),
        )
    })?;
    for sid in current.statements.iter().filter_map(|s| s.sid()) {
        if !sid.starts_with(SID_PREFIX) || kept.statements.iter().any(|k| k.sid() == Some(sid)) {
            continue;
        }
        match client
            .remove_permission()
            .event_bus_name(name)
            .statement_id(sid)
            .send()
            .await
        {
            Ok(_) => {}
            // Removed meanwhile: what was wanted.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => {
                return Err(AwsError::from_sdk(
                    &e,
                    "events:RemovePermission",
                    account_id,
                    NOT_FOUND,
                ));
            }
        }
    }
    Ok(())
}
