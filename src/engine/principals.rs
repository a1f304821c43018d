//! After AWS refused a policy for a principal it does not know: where a candidate principal's
//! account is managed, look it up (`iam:GetRole`, `iam:GetUser`) and say whether it exists, so
//! that "not created yet" and "not propagated yet" read apart.

use super::Engine;
use super::error::{GrantError, PrincipalRefusal};
use super::plan::Plan;
use super::resolve::{AccountDirectory, account_access};

impl Engine {
    /// Adds to each refusal for an unknown principal what its candidates' accounts say of them.
    pub(super) async fn look_up_refused_principals(
        &self,
        accounts: &AccountDirectory,
        plan: &mut Plan,
    ) {
        for target in &mut plan.targets {
            let Some(GrantError::PrincipalNotFound(refusal)) = &mut target.error else {
                continue;
            };
            let PrincipalRefusal { added, found, .. } = refusal.as_mut();
            for arn in added.iter() {
                let id = arn.split(':').nth(4).unwrap_or_default();
                let Some(account) = accounts.iter().find(|a| a.spec.account_id == id) else {
                    continue;
                };
                let name = account.metadata.name.as_deref().unwrap_or_default();
                let what = match self
                    .backend
                    .principal_exists(&account_access(account), arn)
                    .await
                {
                    Ok(Some(true)) => format!(
                        "{arn} exists in AwsAccount {name}: IAM has not made it known to the service yet"
                    ),
                    Ok(Some(false)) => format!("{arn} does not exist in AwsAccount {name}"),
                    Ok(None) => continue,
                    Err(e) => format!("{arn} could not be looked up: {e}"),
                };
                found.push(what);
            }
        }
    }
}
