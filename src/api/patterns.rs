//! Patterns shared by the CRDs' CEL rules and the engine's checks, so a cluster and the CLI refuse
//! the same input. RE2 syntax (what CEL's `matches` and the `regex` crate both speak).

/// A 12-digit AWS account id.
pub const ACCOUNT_ID: &str = "^[0-9]{12}$";
/// A region name such as `us-east-1`.
pub const REGION: &str = "^[a-z]{2}(-[a-z]+)+-[0-9]+$";
/// An IAM action such as `s3:GetObject` (wildcards allowed in the name).
pub const ACTION: &str = "^[a-z0-9-]+:[A-Za-z0-9*?]+$";
/// An external id: 2 to 1,224 characters of letters, digits and `+=,.@:/-`.
pub const EXTERNAL_ID: &str = "^[A-Za-z0-9+=,.@:/-]{2,1224}$";
/// A role session name.
pub const SESSION_NAME: &str = "^[A-Za-z0-9+=,.@_-]{2,64}$";
/// An IAM role ARN (with an optional path).
pub const ROLE_ARN: &str =
    "^arn:aws[a-z-]*:iam::[0-9]{12}:role/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$";
/// A principal in the grantee account written short: `role/NAME`, `user/NAME` (with an optional
/// path) or `instanceProfile/NAME`.
pub const PRINCIPAL_SHORT: &str =
    "^(role|user|instanceProfile)/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$";
/// A principal ARN: a role, a user, an account root, or an assumed-role session.
pub const PRINCIPAL_ARN: &str = "^arn:aws[a-z-]*:(iam::[0-9]{12}:(root|(role|user)/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64})|sts::[0-9]{12}:assumed-role/[A-Za-z0-9+=,.@_-]{1,64}/[A-Za-z0-9+=,.@_-]{2,64})$";

/// An AWS Organizations id such as `o-a1b2c3d4e5`.
pub const ORGANIZATION_ID: &str = "^o-[a-z0-9]{10,32}$";
/// A path in an organization (`aws:PrincipalOrgPaths`): the organization, its root and any OUs,
/// each followed by `/`, optionally ending with `*` for everything below:
/// `o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/`.
pub const ORGANIZATION_PATH: &str =
    "^o-[a-z0-9]{10,32}/r-[0-9a-z]{4,32}/(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}/)*[*]?$";

/// Longest principal accepted (bounds the API server's CEL cost estimate).
pub const MAX_PRINCIPAL_LEN: u32 = 1024;
/// Most principals in one grant.
pub const MAX_PRINCIPALS: u32 = 50;
/// Most explicit actions in one grant.
pub const MAX_ACTIONS: u32 = 100;

/// A CEL rule that every item of a list matches `pattern`.
pub(crate) fn all_match(pattern: &str) -> String {
    format!("self.all(x, x.matches('{pattern}'))")
}

/// A CEL rule that a string matches `pattern`.
pub(crate) fn matches(pattern: &str) -> String {
    format!("self.matches('{pattern}')")
}
