//! Principal forms.

/// The ARN partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition_for_region(region: &str) -> &'static str {
    const PARTITIONS: &[(&str, &str)] = &[
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-iso-", "aws-iso"),
    ];
    PARTITIONS
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// `arn:PARTITION:iam::ACCOUNT:root`, the principal that delegates to a whole account.
pub fn account_root_arn(partition: &str, account_id: &str) -> String {
    format!("arn:{partition}:iam::{account_id}:root")
}

/// Whether a principal string is an IAM unique id (`AROA…` for a role, `AIDA…` for a user). AWS shows
/// these in place of an ARN once the role or user was deleted; they never match again.
pub fn is_unique_id(principal: &str) -> bool {
    let upper_alnum = |s: &str| {
        s.len() >= 16
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    (principal.starts_with("AROA") || principal.starts_with("AIDA")) && upper_alnum(&principal[4..])
}

/// A bare 12-digit account id means the account's root ARN in the policy's own partition, so both
/// forms become `root:ACCOUNT` (one policy never mixes partitions); everything else stays as written.
pub(crate) fn canonical_aws_principal(principal: &str) -> String {
    let is_account = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    if is_account(principal) {
        return format!("root:{principal}");
    }
    let root_of = principal.strip_prefix("arn:").and_then(|rest| {
        let (_partition, rest) = rest.split_once(':')?;
        rest.strip_prefix("iam::")?
            .strip_suffix(":root")
            .filter(|id| is_account(id))
    });
    match root_of {
        Some(id) => format!("root:{id}"),
        None => principal.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_are_recognised() {
        assert!(is_unique_id("AROAEXAMPLEID1234567"));
        assert!(is_unique_id("AIDAJQABLZS4A3QDU576Q"));
        assert!(!is_unique_id("AROA"));
        assert!(!is_unique_id(
            "arn:aws:iam::111111111111:role/AROAEXAMPLEID1234567"
        ));
        assert!(!is_unique_id("AROAexample12345678"));
    }

    #[test]
    fn partitions_follow_regions() {
        assert_eq!(partition_for_region("eu-west-1"), "aws");
        assert_eq!(partition_for_region("cn-north-1"), "aws-cn");
        assert_eq!(partition_for_region("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_for_region("us-iso-east-1"), "aws-iso");
        assert_eq!(partition_for_region("us-isob-east-1"), "aws-iso-b");
    }
}
