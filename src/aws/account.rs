//! How to reach one AWS account.

use std::fmt;

/// An account xacct acts in, and how to get credentials for it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccountAccess {
    /// The AwsAccount's name (for messages).
    pub name: String,
    /// The 12-digit account id the credentials must act in.
    pub account_id: String,
    /// Role to assume; `None`: the tool's own credentials.
    pub assume_role: Option<AssumeRole>,
}

/// `sts:AssumeRole` parameters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AssumeRole {
    /// ARN of the role.
    pub role_arn: String,
    /// External id, if the trust policy wants one.
    pub external_id: Option<String>,
    /// Session name.
    pub session_name: String,
}

// The external id is a shared secret of sorts: never print it.
impl fmt::Debug for AccountAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountAccess")
            .field("name", &self.name)
            .field("account_id", &self.account_id)
            .field("assume_role", &self.assume_role)
            .finish()
    }
}

impl fmt::Debug for AssumeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRole")
            .field("role_arn", &self.role_arn)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "<redacted>"),
            )
            .field("session_name", &self.session_name)
            .finish()
    }
}
