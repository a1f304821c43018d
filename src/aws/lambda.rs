//! Lambda function policies. Lambda has no call that writes a whole policy: statements are added
//! (`AddPermission`) and removed (`RemovePermission`) one by one, by statement id, which is the
//! statement's Sid. Writing a document therefore means adding and removing the statements that
//! differ; only statements carrying xacct's Sid marker are ever added or removed, so a foreign
//! statement added or removed by someone else since the plan read the policy is left as it is.

use aws_sdk_lambda::Client;
use serde_json::{Map, Value};

use super::error::{AwsError, AwsErrorKind};
use crate::policy::{PolicyDocument, SID_PREFIX, Statement};

const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

/// The ARN of the function `name` (a name, or an ARN); `NotFound` when it does not exist.
pub(super) async fn function_arn(
    client: &Client,
    account_id: &str,
    name: &str,
) -> Result<String, AwsError> {
    let out = client
        .get_function()
        .function_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "lambda:GetFunction", account_id, NOT_FOUND))?;
    Ok(out
        .configuration()
        .and_then(|c| c.function_arn())
        .unwrap_or(name)
        .to_string())
}

/// The function's policy, principals in the form IAM writes them (`{"AWS": ARN}`; Lambda may
/// answer a role's ARN as a bare string); `None` without one.
pub(super) async fn read(
    client: &Client,
    account_id: &str,
    function: &str,
) -> Result<Option<String>, AwsError> {
    match client.get_policy().function_name(function).send().await {
        Ok(out) => Ok(out.policy().map(normalized)),
        // The function exists (it was located): no policy.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(AwsError::from_sdk(
            &e,
            "lambda:GetPolicy",
            account_id,
            NOT_FOUND,
        )),
    }
}

/// `policy` with bare-string principals other than `*` written as `{"AWS": …}` (or
/// `{"Service": …}`), their meaning.
fn normalized(policy: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(policy) else {
        return policy.to_string();
    };
    if let Some(statements) = doc.get_mut("Statement").and_then(Value::as_array_mut) {
        for statement in statements {
            if let Some(principal) = statement.get_mut("Principal")
                && let Some(text) = principal.as_str().filter(|p| *p != "*")
            {
                let key = if text.ends_with(".amazonaws.com") {
                    "Service"
                } else {
                    "AWS"
                };
                let mut map = Map::new();
                map.insert(key.into(), Value::String(text.to_string()));
                *principal = Value::Object(map);
            }
        }
    }
    doc.to_string()
}

/// Makes xacct's statements of the function's policy those of `policy`: removes those it no longer
/// has or that changed, then adds the new and changed ones.
pub(super) async fn write(
    client: &Client,
    account_id: &str,
    function: &str,
    policy: &str,
) -> Result<(), AwsError> {
    let invalid = |message: String| refused(account_id, message);
    let wanted = PolicyDocument::parse(policy).map_err(|e| invalid(e.to_string()))?;
    let current = match read(client, account_id, function).await? {
        Some(text) => PolicyDocument::parse(&text).map_err(|e| invalid(e.to_string()))?,
        None => PolicyDocument::new(),
    };
    let ours = |doc: &PolicyDocument| -> Vec<Statement> {
        doc.statements
            .iter()
            .filter(|s| s.sid().is_some_and(|sid| sid.starts_with(SID_PREFIX)))
            .cloned()
            .collect()
    };
    let (wanted, current) = (ours(&wanted), ours(&current));
    let kept = |s: &Statement, among: &[Statement]| {
        among
            .iter()
            .any(|o| o.same_meaning(s) && o.sid() == s.sid())
    };
    for gone in current.iter().filter(|s| !kept(s, &wanted)) {
        remove(client, account_id, function, gone.sid().unwrap_or_default()).await?;
    }
    for new in wanted.iter().filter(|s| !kept(s, &current)) {
        add(client, account_id, function, new).await?;
    }
    Ok(())
}

/// Removes every statement of xacct's from the function's policy (Lambda removes the policy with
/// its last statement).
pub(super) async fn delete(
    client: &Client,
    account_id: &str,
    function: &str,
) -> Result<(), AwsError> {
    let empty = serde_json::json!({"Version": "2012-10-17", "Statement": []}).to_string();
    write(client, account_id, function, &empty).await
}

async fn remove(
    client: &Client,
    account_id: &str,
    function: &str,
    sid: &str,
) -> Result<(), AwsError> {
    match client
        .remove_permission()
        .function_name(function)
        .statement_id(sid)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Removed meanwhile: what was wanted.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(AwsError::from_sdk(
            &e,
            "lambda:RemovePermission",
            account_id,
            NOT_FOUND,
        )),
    }
}

/// One statement as `AddPermission` takes it: its Sid, one action, one principal, and at most the
/// conditions the call has parameters for.
async fn add(
    client: &Client,
    account_id: &str,
    function: &str,
    statement: &Statement,
) -> Result<(), AwsError> {
    let invalid = |message: String| refused(account_id, message);
    let json = statement.as_json();
    let sid = statement.sid().unwrap_or_default();
    let action = json
        .get("Action")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("statement {sid}: AddPermission takes one action")))?;
    let principal = match json.get("Principal") {
        Some(Value::Object(map)) if map.len() == 1 => map
            .get("AWS")
            .or_else(|| map.get("Service"))
            .and_then(Value::as_str),
        Some(Value::String(any)) => Some(any.as_str()),
        _ => None,
    }
    .ok_or_else(|| {
        invalid(format!(
            "statement {sid}: AddPermission takes one principal"
        ))
    })?;
    let mut request = client
        .add_permission()
        .function_name(function)
        .statement_id(sid)
        .action(action)
        .principal(principal);
    if let Some(Value::Object(conditions)) = json.get("Condition") {
        for (operator, keys) in conditions {
            let Value::Object(keys) = keys else {
                return Err(invalid(format!(
                    "statement {sid}: condition {operator} has no keys"
                )));
            };
            for (key, value) in keys {
                let value = value.as_str().unwrap_or_default().to_string();
                request = match (operator.as_str(), key.to_ascii_lowercase().as_str()) {
                    ("StringEquals", "aws:principalorgid") => request.principal_org_id(value),
                    ("ArnLike", "aws:sourcearn") => request.source_arn(value),
                    ("StringEquals", "aws:sourceaccount") => request.source_account(value),
                    _ => {
                        return Err(invalid(format!(
                            "statement {sid}: a Lambda function policy cannot hold the condition {operator} {key} (AddPermission has no parameter for it)"
                        )));
                    }
                };
            }
        }
    }
    request
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "lambda:AddPermission", account_id, NOT_FOUND))
}

/// A statement `AddPermission` cannot take, as AWS refusing it would be reported.
fn refused(account_id: &str, message: String) -> AwsError {
    AwsError::new(
        AwsErrorKind::InvalidPolicy,
        "lambda:AddPermission",
        account_id,
        message,
    )
}
