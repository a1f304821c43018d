//! The CEL rules (`x-kubernetes-validations`) of the CRDs, evaluated client-side the way the API
//! server runs them (schema defaults applied first, then every rule of every present node), through
//! the `validate_cel()` methods kube's `cel` feature generates.
//!
//! Every refusal is checked precisely: the rule must evaluate to `false` (not fail to evaluate),
//! at the expected field, with the expected message, and no other rule may fire.

use kube::core::cel::{ErrorKind, ValidationErrors};
use xacct::api::{AwsAccount, CrossAccountGrant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const PRINCIPAL_MESSAGE: &str = "each principal must be an IAM role or user ARN, arn:aws:iam::ACCOUNT:root, an assumed-role session ARN, role/NAME, user/NAME or instanceProfile/NAME";
const ACCOUNT_ID_MESSAGE: &str = "accountId must be a 12-digit AWS account id";
const ACCESS_OR_ACTIONS_MESSAGE: &str = "set access (presets) or actions (or both)";
const GRANTEE_MESSAGE: &str =
    "set exactly one of grantee.accountId, grantee.account and grantee.organization";
const ROLE_IN_ACCOUNT_MESSAGE: &str = "assumeRole.roleArn must be a role in accountId";
const ROLE_ARN_MESSAGE: &str =
    "roleArn must be an IAM role ARN like arn:aws:iam::222222222222:role/xacct-manager";

fn indent(spec: &str) -> String {
    spec.lines()
        .map(|line| format!("  {line}\n"))
        .collect::<String>()
}

/// A `CrossAccountGrant` with the given `spec` (YAML, unindented).
fn grant(spec: &str) -> CrossAccountGrant {
    let yaml = format!(
        "apiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {{name: g, namespace: team}}\nspec:\n{}",
        indent(spec)
    );
    serde_norway::from_str::<CrossAccountGrant>(&yaml)
        .unwrap_or_else(|e| panic!("test grant does not deserialize: {e}\n{yaml}"))
}

/// An `AwsAccount` with the given `spec` (YAML, unindented).
fn account(spec: &str) -> AwsAccount {
    let yaml = format!(
        "apiVersion: xacct.dev/v1alpha1\nkind: AwsAccount\nmetadata: {{name: data-prod}}\nspec:\n{}",
        indent(spec)
    );
    serde_norway::from_str::<AwsAccount>(&yaml)
        .unwrap_or_else(|e| panic!("test account does not deserialize: {e}\n{yaml}"))
}

fn describe(errors: &ValidationErrors) -> String {
    errors
        .iter()
        .map(|e| {
            format!(
                "  - [{:?}] {}: {} (rule: {})",
                e.kind, e.field_path, e.message, e.rule
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn assert_accepted(result: Result<(), ValidationErrors>) {
    if let Err(errors) = result {
        panic!(
            "expected the object to pass every CEL rule, got:\n{}",
            describe(&errors)
        );
    }
}

/// The object is refused by exactly the rules `expected` (field path, message), each evaluating to
/// `false` rather than failing to evaluate.
#[track_caller]
fn assert_refused(result: Result<(), ValidationErrors>, expected: &[(&str, &str)]) {
    let errors = match result {
        Ok(()) => panic!("expected refusal by {expected:?}, but every CEL rule passed"),
        Err(errors) => errors,
    };
    for e in errors.iter() {
        assert_eq!(
            e.kind,
            ErrorKind::ValidationFailure,
            "a rule failed to evaluate instead of returning false:\n{}",
            describe(&errors)
        );
    }
    let mut actual: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.field_path.as_str(), e.message.as_str()))
        .collect();
    actual.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(
        actual,
        expected,
        "unexpected set of failed rules:\n{}",
        describe(&errors)
    );
}

/// A valid S3 grant spec with `grantee` replaced.
fn s3_grant_with_grantee(grantee: &str) -> CrossAccountGrant {
    grant(&format!(
        "resource: {{account: data-prod, kind: S3Bucket, name: lake-bucket}}\ngrantee: {grantee}\naccess: [read]"
    ))
}

/// A valid S3 grant spec whose grantee has the given principal.
fn s3_grant_with_principal(principal: &str) -> CrossAccountGrant {
    s3_grant_with_grantee(&format!(
        "{{accountId: \"111111111111\", principals: ['{principal}']}}"
    ))
}

/// A valid account whose spec has `accountId` replaced.
fn account_with_id(account_id: &str) -> AwsAccount {
    account(&format!("accountId: \"{account_id}\"\nregion: eu-west-1"))
}

fn account_with_role(role_arn: &str) -> AwsAccount {
    account(&format!(
        "accountId: \"222222222222\"\nassumeRole: {{roleArn: \"{role_arn}\"}}"
    ))
}

// ---------------------------------------------------------------------------------------------
// Valid objects
// ---------------------------------------------------------------------------------------------

#[test]
fn valid_s3_bucket_read_with_prefix() {
    assert_accepted(
        grant(
            "resource: {account: data-prod, kind: S3Bucket, name: lake-bucket, prefix: shared/, region: eu-west-1}
grantee: {accountId: \"111111111111\", principals: [role/BatchJobRole]}
access: [read]",
        )
        .validate_cel(),
    );
}

#[test]
fn valid_ecr_repository_pull_push() {
    assert_accepted(
        grant(
            "resource: {account: data-prod, kind: EcrRepository, name: team/app}
grantee: {account: dev, principals: ['arn:aws:iam::111111111111:role/ci/Builder']}
access: [pullPush]",
        )
        .validate_cel(),
    );
}

#[test]
fn valid_kms_key_decrypt_and_grant() {
    assert_accepted(
        grant(
            "resource: {account: data-prod, kind: KmsKey, name: alias/lake}
grantee: {accountId: \"111111111111\"}
access: [decrypt, grant]
conditions:
  StringEquals:
    kms:ViaService: s3.eu-west-1.amazonaws.com",
        )
        .validate_cel(),
    );
}

#[test]
fn valid_iam_role_assume_with_external_id() {
    assert_accepted(
        grant(
            "resource: {account: data-prod, kind: IamRole, name: DataReader}
grantee: {accountId: \"111111111111\", principals: [user/alice]}
access: [assume]
externalId: xacct-ext-0001
deletionPolicy: Retain",
        )
        .validate_cel(),
    );
}

#[test]
fn valid_grants_with_actions_only_of_each_service() {
    for (kind, action) in [
        ("S3Bucket", "s3:GetObject"),
        ("EcrRepository", "ecr:BatchGetImage"),
        ("KmsKey", "kms:Decrypt"),
        ("IamRole", "sts:TagSession"),
        ("S3Bucket", "s3:Get*"),
    ] {
        let result = grant(&format!(
            "resource: {{account: data-prod, kind: {kind}, name: thing}}\ngrantee: {{accountId: \"111111111111\"}}\nactions: ['{action}']"
        ))
        .validate_cel();
        assert!(
            result.is_ok(),
            "{kind} with actions [{action}]:\n{}",
            describe(&result.unwrap_err())
        );
    }
}

#[test]
fn valid_account_without_assume_role() {
    assert_accepted(account("accountId: \"222222222222\"").validate_cel());
}

#[test]
fn valid_account_with_assume_role_in_the_account() {
    assert_accepted(
        account(
            "accountId: \"222222222222\"
assumeRole: {roleArn: 'arn:aws:iam::222222222222:role/xacct-manager', externalId: ext-1234, sessionName: xacct-ci}
region: us-east-1
allowedNamespaces: ['*']
allowPublicPrincipals: true",
        )
        .validate_cel(),
    );
}

#[test]
fn valid_account_with_assume_role_in_another_partition() {
    assert_accepted(
        account_with_role("arn:aws-cn:iam::222222222222:role/xacct-manager").validate_cel(),
    );
    assert_accepted(
        account_with_role("arn:aws-us-gov:iam::222222222222:role/path/xacct-manager")
            .validate_cel(),
    );
}

// ---------------------------------------------------------------------------------------------
// Account ids
// ---------------------------------------------------------------------------------------------

#[test]
fn aws_account_id_with_11_digits_is_refused() {
    assert_refused(
        account_with_id("22222222222").validate_cel(),
        &[("spec.accountId", ACCOUNT_ID_MESSAGE)],
    );
}

#[test]
fn aws_account_id_with_13_digits_is_refused() {
    assert_refused(
        account_with_id("2222222222222").validate_cel(),
        &[("spec.accountId", ACCOUNT_ID_MESSAGE)],
    );
}

#[test]
fn aws_account_id_with_letters_is_refused() {
    assert_refused(
        account_with_id("22222222222a").validate_cel(),
        &[("spec.accountId", ACCOUNT_ID_MESSAGE)],
    );
}

#[test]
fn grantee_account_id_with_11_digits_is_refused() {
    assert_refused(
        s3_grant_with_grantee("{accountId: \"11111111111\"}").validate_cel(),
        &[("spec.grantee.accountId", ACCOUNT_ID_MESSAGE)],
    );
}

#[test]
fn grantee_account_id_with_13_digits_is_refused() {
    assert_refused(
        s3_grant_with_grantee("{accountId: \"1111111111111\"}").validate_cel(),
        &[("spec.grantee.accountId", ACCOUNT_ID_MESSAGE)],
    );
}

#[test]
fn grantee_account_id_with_letters_is_refused() {
    assert_refused(
        s3_grant_with_grantee("{accountId: \"11111111111x\"}").validate_cel(),
        &[("spec.grantee.accountId", ACCOUNT_ID_MESSAGE)],
    );
}

// ---------------------------------------------------------------------------------------------
// AwsAccount.assumeRole
// ---------------------------------------------------------------------------------------------

#[test]
fn assume_role_in_another_account_is_refused() {
    assert_refused(
        account_with_role("arn:aws:iam::333333333333:role/xacct-manager").validate_cel(),
        &[("spec", ROLE_IN_ACCOUNT_MESSAGE)],
    );
}

#[test]
fn assume_role_in_another_account_of_another_partition_is_refused() {
    assert_refused(
        account_with_role("arn:aws-cn:iam::333333333333:role/xacct-manager").validate_cel(),
        &[("spec", ROLE_IN_ACCOUNT_MESSAGE)],
    );
}

#[test]
fn assume_role_arn_of_a_user_is_refused() {
    assert_refused(
        account_with_role("arn:aws:iam::222222222222:user/xacct").validate_cel(),
        &[("spec.assumeRole.roleArn", ROLE_ARN_MESSAGE)],
    );
}

#[test]
fn assume_role_arn_without_role_name_is_refused() {
    assert_refused(
        account_with_role("arn:aws:iam::222222222222:role/").validate_cel(),
        &[("spec.assumeRole.roleArn", ROLE_ARN_MESSAGE)],
    );
}

#[test]
fn assume_role_given_as_a_bare_name_is_refused() {
    assert_refused(
        account_with_role("xacct-manager").validate_cel(),
        &[
            ("spec.assumeRole.roleArn", ROLE_ARN_MESSAGE),
            ("spec", ROLE_IN_ACCOUNT_MESSAGE),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Grantee: exactly one of accountId and account
// ---------------------------------------------------------------------------------------------

#[test]
fn grantee_with_both_account_id_and_account_is_refused() {
    assert_refused(
        s3_grant_with_grantee("{accountId: \"111111111111\", account: dev}").validate_cel(),
        &[("spec.grantee", GRANTEE_MESSAGE)],
    );
}

#[test]
fn grantee_with_neither_account_id_nor_account_is_refused() {
    assert_refused(
        s3_grant_with_grantee("{principals: [role/BatchJobRole]}").validate_cel(),
        &[("spec.grantee", GRANTEE_MESSAGE)],
    );
}

// ---------------------------------------------------------------------------------------------
// Grantee: an organization
// ---------------------------------------------------------------------------------------------

const ORG_ID_MESSAGE: &str = "organization id must look like o-a1b2c3d4e5";
const ORG_PATH_MESSAGE: &str =
    "each path must look like o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ (optionally ending with *)";

#[test]
fn an_organization_grantee_with_or_without_paths_is_accepted() {
    assert_accepted(s3_grant_with_grantee("{organization: {id: o-a1b2c3d4e5}}").validate_cel());
    assert_accepted(
        s3_grant_with_grantee(
            "{organization: {id: o-a1b2c3d4e5, paths: [o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/, 'o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/*']}}",
        )
        .validate_cel(),
    );
}

#[test]
fn an_organization_id_or_path_of_the_wrong_form_is_refused() {
    assert_refused(
        s3_grant_with_grantee("{organization: {id: o-short}}").validate_cel(),
        &[("spec.grantee.organization.id", ORG_ID_MESSAGE)],
    );
    assert_refused(
        s3_grant_with_grantee(
            "{organization: {id: o-a1b2c3d4e5, paths: [o-a1b2c3d4e5/ou-ab12-11111111/]}}",
        )
        .validate_cel(),
        &[("spec.grantee.organization.paths", ORG_PATH_MESSAGE)],
    );
    assert_refused(
        s3_grant_with_grantee("{organization: {id: o-a1b2c3d4e5, paths: [o-zzzzzzzzzz/r-ab12/]}}")
            .validate_cel(),
        &[(
            "spec.grantee.organization",
            "each path must start with the organization's id",
        )],
    );
    assert_refused(
        account("accountId: \"222222222222\"\nallowedOrganizations: [o-a1b2c3d4e5, O-CAPITALS00]")
            .validate_cel(),
        &[(
            "spec.allowedOrganizations",
            "each organization id must look like o-a1b2c3d4e5",
        )],
    );
}

#[test]
fn an_organization_grantee_names_no_principals_no_account_and_no_grantee_side() {
    assert_refused(
        s3_grant_with_grantee("{organization: {id: o-a1b2c3d4e5}, principals: [role/Job]}")
            .validate_cel(),
        &[(
            "spec.grantee",
            "an organization grantee names no principals: every principal of the organization (or of its paths) is granted",
        )],
    );
    assert_refused(
        s3_grant_with_grantee("{organization: {id: o-a1b2c3d4e5}, accountId: \"111111111111\"}")
            .validate_cel(),
        &[("spec.grantee", GRANTEE_MESSAGE)],
    );
    assert_refused(
        grant(
            "resource: {account: data-prod, kind: S3Bucket, name: lake}\ngrantee: {organization: {id: o-a1b2c3d4e5}}\naccess: [read]\ngranteeSide: Manage",
        )
        .validate_cel(),
        &[
            ("spec", "an organization grantee has no grantee side: granteeSide must be None"),
            ("spec", "granteeSide: Manage needs grantee.account (the grantee's AwsAccount): xacct can only write identity policies in an account it manages"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Presets and actions per kind
// ---------------------------------------------------------------------------------------------

fn grant_of_kind(kind: &str, rest: &str) -> CrossAccountGrant {
    grant(&format!(
        "resource: {{account: data-prod, kind: {kind}, name: thing}}\ngrantee: {{accountId: \"111111111111\"}}\n{rest}"
    ))
}

#[test]
fn ecr_preset_on_s3_bucket_is_refused() {
    assert_refused(
        grant_of_kind("S3Bucket", "access: [read, pull]").validate_cel(),
        &[(
            "spec",
            "access presets for S3Bucket are read, write and readWrite",
        )],
    );
}

#[test]
fn s3_preset_on_ecr_repository_is_refused() {
    assert_refused(
        grant_of_kind("EcrRepository", "access: [read]").validate_cel(),
        &[(
            "spec",
            "access presets for EcrRepository are pull, push and pullPush",
        )],
    );
}

#[test]
fn iam_preset_on_kms_key_is_refused() {
    assert_refused(
        grant_of_kind("KmsKey", "access: [assume]").validate_cel(),
        &[(
            "spec",
            "access presets for KmsKey are decrypt, encrypt, encryptDecrypt, grant and describe",
        )],
    );
}

#[test]
fn kms_preset_on_iam_role_is_refused() {
    assert_refused(
        grant_of_kind("IamRole", "access: [decrypt]").validate_cel(),
        &[("spec", "the access preset for IamRole is assume")],
    );
}

#[test]
fn queue_topic_and_secret_presets_are_their_own() {
    assert_accepted(grant_of_kind("SqsQueue", "access: [send, consume]").validate_cel());
    assert_accepted(grant_of_kind("SnsTopic", "access: [publish, subscribe]").validate_cel());
    assert_accepted(grant_of_kind("Secret", "access: [read]").validate_cel());
    assert_refused(
        grant_of_kind("SqsQueue", "access: [publish]").validate_cel(),
        &[("spec", "access presets for SqsQueue are send and consume")],
    );
    assert_refused(
        grant_of_kind("SnsTopic", "access: [send]").validate_cel(),
        &[(
            "spec",
            "access presets for SnsTopic are publish and subscribe",
        )],
    );
    assert_refused(
        grant_of_kind("Secret", "access: [write]").validate_cel(),
        &[("spec", "the access preset for Secret is read")],
    );
    assert_refused(
        grant_of_kind("S3Bucket", "access: [send]").validate_cel(),
        &[(
            "spec",
            "access presets for S3Bucket are read, write and readWrite",
        )],
    );
}

#[test]
fn an_event_bus_grant_puts_events() {
    assert_accepted(grant_of_kind("EventBus", "access: [putEvents]").validate_cel());
    assert_refused(
        grant_of_kind("EventBus", "access: [publish]").validate_cel(),
        &[("spec", "the access preset for EventBus is putEvents")],
    );
    assert_refused(
        grant_of_kind("EventBus", "actions: ['sns:Publish']").validate_cel(),
        &[("spec", "actions on an EventBus must start with events:")],
    );
}

#[test]
fn a_lambda_grant_invokes_and_takes_no_conditions() {
    assert_accepted(grant_of_kind("LambdaFunction", "access: [invoke]").validate_cel());
    assert_refused(
        grant_of_kind("LambdaFunction", "access: [read]").validate_cel(),
        &[("spec", "the access preset for LambdaFunction is invoke")],
    );
    assert_refused(
        grant_of_kind("LambdaFunction", "actions: ['sqs:SendMessage']").validate_cel(),
        &[(
            "spec",
            "actions on a LambdaFunction must start with lambda:",
        )],
    );
    assert_refused(
        grant_of_kind(
            "LambdaFunction",
            "access: [invoke]\nconditions: {IpAddress: {'aws:SourceIp': 203.0.113.0/24}}",
        )
        .validate_cel(),
        &[(
            "spec",
            "a LambdaFunction grant takes no conditions: Lambda's AddPermission has no parameter for them",
        )],
    );
}

#[test]
fn queue_topic_and_secret_actions_are_of_their_service() {
    assert_accepted(grant_of_kind("SqsQueue", "actions: ['sqs:SendMessageBatch']").validate_cel());
    assert_refused(
        grant_of_kind("SqsQueue", "actions: ['sns:Publish']").validate_cel(),
        &[("spec", "actions on an SqsQueue must start with sqs:")],
    );
    assert_refused(
        grant_of_kind("SnsTopic", "actions: ['sqs:SendMessage']").validate_cel(),
        &[("spec", "actions on an SnsTopic must start with sns:")],
    );
    assert_refused(
        grant_of_kind("Secret", "actions: ['kms:Decrypt']").validate_cel(),
        &[(
            "spec",
            "actions on a Secret must start with secretsmanager:",
        )],
    );
}

#[test]
fn ecr_action_on_s3_bucket_is_refused() {
    assert_refused(
        grant_of_kind("S3Bucket", "actions: ['ecr:BatchGetImage']").validate_cel(),
        &[("spec", "actions on an S3Bucket must start with s3:")],
    );
}

#[test]
fn s3_action_on_ecr_repository_is_refused() {
    assert_refused(
        grant_of_kind("EcrRepository", "access: [pull]\nactions: ['s3:GetObject']").validate_cel(),
        &[("spec", "actions on an EcrRepository must start with ecr:")],
    );
}

#[test]
fn iam_action_on_kms_key_is_refused() {
    assert_refused(
        grant_of_kind("KmsKey", "actions: ['iam:PassRole']").validate_cel(),
        &[("spec", "actions on a KmsKey must start with kms:")],
    );
}

#[test]
fn kms_action_on_iam_role_is_refused() {
    assert_refused(
        grant_of_kind("IamRole", "actions: ['kms:Decrypt']").validate_cel(),
        &[("spec", "actions on an IamRole must start with sts:")],
    );
}

#[test]
fn action_with_a_space_is_refused() {
    assert_refused(
        grant_of_kind("S3Bucket", "actions: ['s3:GetObject', 's3:Get Object']").validate_cel(),
        &[("spec.actions", "each action must look like service:Action")],
    );
}

#[test]
fn action_without_a_name_is_refused() {
    assert_refused(
        grant_of_kind("S3Bucket", "actions: ['s3:']").validate_cel(),
        &[("spec.actions", "each action must look like service:Action")],
    );
}

#[test]
fn action_without_a_service_is_refused() {
    // Also outside the S3 service, so the per-kind rule fires too.
    assert_refused(
        grant_of_kind("S3Bucket", "actions: [GetObject]").validate_cel(),
        &[
            ("spec.actions", "each action must look like service:Action"),
            ("spec", "actions on an S3Bucket must start with s3:"),
        ],
    );
}

#[test]
fn neither_access_nor_actions_is_refused() {
    assert_refused(
        grant_of_kind("S3Bucket", "deletionPolicy: Delete").validate_cel(),
        &[("spec", ACCESS_OR_ACTIONS_MESSAGE)],
    );
}

#[test]
fn empty_access_and_actions_are_refused() {
    assert_refused(
        grant_of_kind("KmsKey", "access: []\nactions: []").validate_cel(),
        &[("spec", ACCESS_OR_ACTIONS_MESSAGE)],
    );
}

// ---------------------------------------------------------------------------------------------
// Kind-specific fields
// ---------------------------------------------------------------------------------------------

#[test]
fn prefix_on_ecr_repository_is_refused() {
    assert_refused(
        grant(
            "resource: {account: data-prod, kind: EcrRepository, name: team/app, prefix: shared/}
grantee: {accountId: \"111111111111\"}
access: [pull]",
        )
        .validate_cel(),
        &[("spec.resource", "prefix applies to S3Bucket only")],
    );
}

#[test]
fn prefix_with_a_wildcard_is_refused() {
    assert_refused(
        grant(
            "resource: {account: data-prod, kind: S3Bucket, name: lake-bucket, prefix: 'shared/*'}
grantee: {accountId: \"111111111111\"}
access: [read]",
        )
        .validate_cel(),
        &[(
            "spec.resource.prefix",
            "prefix must be non-empty and without wildcards",
        )],
    );
}

#[test]
fn external_id_on_s3_bucket_is_refused() {
    assert_refused(
        grant_of_kind("S3Bucket", "access: [read]\nexternalId: xacct-ext-0001").validate_cel(),
        &[(
            "spec",
            "externalId applies to IamRole and SageMakerEndpoint grants only",
        )],
    );
}

#[test]
fn external_id_on_kms_key_is_refused() {
    assert_refused(
        grant_of_kind("KmsKey", "access: [decrypt]\nexternalId: xacct-ext-0001").validate_cel(),
        &[(
            "spec",
            "externalId applies to IamRole and SageMakerEndpoint grants only",
        )],
    );
}

// ---------------------------------------------------------------------------------------------
// Principals
// ---------------------------------------------------------------------------------------------

#[test]
fn s3_arn_as_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("arn:aws:s3:::x").validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

#[test]
fn role_prefix_without_name_as_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("role/").validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

#[test]
fn user_prefix_without_name_as_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("user/").validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

#[test]
fn role_arn_without_name_as_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("arn:aws:iam::111111111111:role/").validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

#[test]
fn group_as_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("group/Admins").validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

#[test]
fn bare_account_id_as_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("111111111111").validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

#[test]
fn star_principal_passes_the_schema() {
    // Public principals are refused (unless the account allows them) by the engine, in Rust: the
    // schema alone lets `*` through.
    assert_accepted(s3_grant_with_principal("*").validate_cel());
}

#[test]
fn role_name_principal_passes() {
    assert_accepted(s3_grant_with_principal("role/BatchJobRole").validate_cel());
}

#[test]
fn role_name_with_path_principal_passes() {
    assert_accepted(s3_grant_with_principal("role/service-role/BatchJobRole").validate_cel());
}

#[test]
fn user_name_principal_passes() {
    assert_accepted(s3_grant_with_principal("user/alice").validate_cel());
}

#[test]
fn role_arn_principal_passes() {
    assert_accepted(
        s3_grant_with_principal("arn:aws:iam::111111111111:role/BatchJobRole").validate_cel(),
    );
}

#[test]
fn user_arn_principal_passes() {
    assert_accepted(s3_grant_with_principal("arn:aws:iam::111111111111:user/alice").validate_cel());
}

#[test]
fn root_arn_principal_passes() {
    assert_accepted(s3_grant_with_principal("arn:aws:iam::111111111111:root").validate_cel());
}

#[test]
fn assumed_role_arn_principal_passes() {
    assert_accepted(
        s3_grant_with_principal("arn:aws:sts::111111111111:assumed-role/BatchJobRole/session")
            .validate_cel(),
    );
}

#[test]
fn several_principals_with_one_malformed_are_refused() {
    assert_refused(
        s3_grant_with_grantee(
            "{accountId: \"111111111111\", principals: [role/A, 'arn:aws:iam::111111111111:root', 'arn:aws:s3:::x']}",
        )
        .validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

// The principal rule is more permissive than its message ("an IAM role or user ARN, ..., role/NAME
// or user/NAME"): the ARN alternatives end in `role/.+` / `user/.+` / `assumed-role/.+`, and the
// short form allows `/` anywhere after `role/`. The engine (src/engine/resolve.rs, principal_arn)
// lets the first three through as well; AWS then refuses the policy at apply time.

#[test]
fn role_path_without_name_as_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("role/team/").validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

#[test]
fn wildcard_in_role_arn_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("arn:aws:iam::111111111111:role/*").validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

#[test]
fn role_arn_with_a_space_as_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("arn:aws:iam::111111111111:role/Has Space").validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

#[test]
fn assumed_role_arn_without_session_as_principal_is_refused() {
    assert_refused(
        s3_grant_with_principal("arn:aws:sts::111111111111:assumed-role/BatchJobRole")
            .validate_cel(),
        &[("spec.grantee.principals", PRINCIPAL_MESSAGE)],
    );
}

// ---------------------------------------------------------------------------------------------
// The rules themselves
// ---------------------------------------------------------------------------------------------

#[test]
fn every_rule_compiles_client_side() {
    use kube::CustomResourceExt;
    for crd in [AwsAccount::crd(), CrossAccountGrant::crd()] {
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap(),
        )
        .unwrap();
        let compiled = kube::core::cel::compile_schema(&schema);
        let errors: Vec<String> = compiled
            .compilation_errors()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{}: rules that do not compile: {errors:#?}",
            crd.spec.names.kind
        );
    }
}
