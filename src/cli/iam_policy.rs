//! `xacct iam-policy`: the IAM policies of the role xacct assumes in each managed account.
//!
//! Two documents: the role's permissions (identity) policy, built from [`PERMISSIONS`] for the
//! kinds in use (the resource kinds of grants, and `rds` for snapshot sharing), and its trust
//! policy, which lets the controller's own role assume it (with an `sts:ExternalId` condition when
//! the AwsAccount sets `spec.assumeRole.externalId`).

use std::fmt::Write;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value, json};

use super::Output;
use crate::api::ResourceKind;
use crate::api::patterns::{EXTERNAL_ID, PRINCIPAL_ARN};
use crate::policy::{PolicyDocument, PolicyError, Statement};

/// The controller role ARN used when none is given: AWS's documentation account and a name that
/// says what to do with it.
pub const PLACEHOLDER_CONTROLLER_ROLE_ARN: &str =
    "arn:aws:iam::111122223333:role/PLACEHOLDER-xacct-controller";

/// What `--kinds` selects: one entry of [`PERMISSIONS`] each.
///
/// Not [`ResourceKind`]: that is the resource kind of a CrossAccountGrant, and RDS snapshot sharing
/// (SnapshotShare) is none. Each ResourceKind is one PermissionKind (`From`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PermissionKind {
    /// S3 bucket policies (CrossAccountGrant kind S3Bucket).
    S3,
    /// ECR repository policies (EcrRepository).
    Ecr,
    /// KMS key policies (KmsKey).
    Kms,
    /// IAM role trust policies (IamRole).
    Iam,
    /// RDS snapshot sharing (SnapshotShare), with the KMS calls of encrypted snapshots.
    Rds,
    /// SageMaker endpoints (SageMakerEndpoint): the endpoint check and the invocation roles xacct
    /// creates.
    SageMaker,
    /// SQS queue policies (SqsQueue).
    Sqs,
    /// SNS topic policies (SnsTopic).
    Sns,
    /// Secrets Manager resource policies (Secret).
    SecretsManager,
    /// Lambda function policies (LambdaFunction).
    Lambda,
    /// EventBridge event bus policies (EventBus).
    Events,
    /// The grantee side (`granteeSide: Manage`): xacct's inline policies on grantee roles and users.
    Identity,
    /// Garbage collection (`xacct gc`, `--gc-period`): listing what may hold orphaned statements;
    /// reading and writing those policies takes the kinds they are of.
    Gc,
}

impl From<ResourceKind> for PermissionKind {
    fn from(kind: ResourceKind) -> Self {
        match kind {
            ResourceKind::S3Bucket => PermissionKind::S3,
            ResourceKind::EcrRepository => PermissionKind::Ecr,
            ResourceKind::KmsKey => PermissionKind::Kms,
            ResourceKind::IamRole => PermissionKind::Iam,
            ResourceKind::SageMakerEndpoint => PermissionKind::SageMaker,
            ResourceKind::SqsQueue => PermissionKind::Sqs,
            ResourceKind::SnsTopic => PermissionKind::Sns,
            ResourceKind::Secret => PermissionKind::SecretsManager,
            ResourceKind::LambdaFunction => PermissionKind::Lambda,
            ResourceKind::EventBus => PermissionKind::Events,
        }
    }
}

impl PermissionKind {
    /// The grant resource kind this is, if any (`rds` is none).
    pub fn resource_kind(self) -> Option<ResourceKind> {
        match self {
            PermissionKind::S3 => Some(ResourceKind::S3Bucket),
            PermissionKind::Ecr => Some(ResourceKind::EcrRepository),
            PermissionKind::Kms => Some(ResourceKind::KmsKey),
            PermissionKind::Iam => Some(ResourceKind::IamRole),
            PermissionKind::SageMaker => Some(ResourceKind::SageMakerEndpoint),
            PermissionKind::Sqs => Some(ResourceKind::SqsQueue),
            PermissionKind::Sns => Some(ResourceKind::SnsTopic),
            PermissionKind::SecretsManager => Some(ResourceKind::Secret),
            PermissionKind::Lambda => Some(ResourceKind::LambdaFunction),
            PermissionKind::Events => Some(ResourceKind::EventBus),
            PermissionKind::Rds | PermissionKind::Identity | PermissionKind::Gc => None,
        }
    }
}

/// One statement of the permissions policy.
#[derive(Debug, Clone, Copy)]
pub struct StatementPermissions {
    /// Sid of the statement (IAM Sids are letters and digits only).
    pub sid: &'static str,
    /// Every action xacct calls here (the SDK operation of the same name), with why.
    pub actions: &'static [(&'static str, &'static str)],
    /// The statement's Resource (one ARN pattern or more); `{partition}` is replaced by the
    /// controller role's partition.
    pub resources: &'static [&'static str],
    /// Why the Resource is this wide.
    pub resource_note: &'static str,
}

/// The permissions of one kind: its statements of the permissions policy.
#[derive(Debug, Clone, Copy)]
pub struct KindPermissions {
    /// The kind.
    pub kind: PermissionKind,
    /// The name on the command line (`--kinds`).
    pub name: &'static str,
    /// The other name `--kinds` takes: the grant's ResourceKind, or the custom resource.
    pub long_name: &'static str,
    /// Its statements; each names the actions of one service.
    pub statements: &'static [StatementPermissions],
}

/// What the role xacct assumes in a managed account must be allowed to do, per kind.
///
/// This is the one list of those permissions: exactly the calls of
/// `src/aws/{s3,ecr,kms,iam,identity,roles,sagemaker}.rs` (grants, both sides) and of
/// `src/aws/{rds,kms}.rs` through `src/aws/snapshots.rs` (snapshot sharing), which
/// are made with the managed account's credentials. The other AWS calls xacct makes are STS
/// calls: `sts:AssumeRole` is made with the controller's own credentials (the trust policy, and the
/// controller role's own identity policy, allow it), and `sts:GetCallerIdentity` needs no
/// permission. `tests/iam_policy.rs` runs every kind against the AWS emulator and fails when a call
/// is missing here, or when an action here is never called.
pub const PERMISSIONS: &[KindPermissions] = &[
    KindPermissions {
        kind: PermissionKind::S3,
        name: "s3",
        long_name: "S3Bucket",
        statements: &[StatementPermissions {
            sid: "XacctS3BucketPolicies",
            actions: &[
                (
                    "s3:GetBucketPolicy",
                    "read a bucket policy (plan, apply, and the re-read before each write)",
                ),
                ("s3:PutBucketPolicy", "write the merged bucket policy"),
                (
                    "s3:DeleteBucketPolicy",
                    "remove a bucket policy left empty, when only xacct's statements were in it",
                ),
            ],
            resources: &["arn:{partition}:s3:::*"],
            resource_note: "bucket ARNs name no account, and S3 lets only identities of the bucket owner's account read, write or delete a bucket policy, so this reaches the account's own buckets only",
        }],
    },
    KindPermissions {
        kind: PermissionKind::Ecr,
        name: "ecr",
        long_name: "EcrRepository",
        statements: &[StatementPermissions {
            sid: "XacctEcrRepositoryPolicies",
            actions: &[
                ("ecr:GetRepositoryPolicy", "read a repository policy"),
                (
                    "ecr:SetRepositoryPolicy",
                    "write the merged repository policy",
                ),
                (
                    "ecr:DeleteRepositoryPolicy",
                    "remove a repository policy left empty, when only xacct's statements were in it",
                ),
            ],
            resources: &["arn:{partition}:ecr:*:*:repository/*"],
            resource_note: "repositories only, in any region (a grant may name any region); replace the account `*` with the account id, or `repository/*` with the repositories grants may name, to narrow it further",
        }],
    },
    KindPermissions {
        kind: PermissionKind::Kms,
        name: "kms",
        long_name: "KmsKey",
        statements: &[StatementPermissions {
            sid: "XacctKmsKeyPolicies",
            actions: &[
                (
                    "kms:DescribeKey",
                    "resolve a grant's alias/NAME or alias ARN to its key (grants naming a key id or key ARN make no such call)",
                ),
                ("kms:GetKeyPolicy", "read the key policy"),
                ("kms:PutKeyPolicy", "write the merged key policy"),
            ],
            resources: &["arn:{partition}:kms:*:*:key/*"],
            resource_note: "keys only, in any region: KMS authorizes DescribeKey by alias against the key the alias points to, so alias resolution needs no `*` (alias ARNs in Resource only govern alias operations); the key policy must also let IAM policies of the account grant access (the default key policy's root statement), or name the role itself",
        }],
    },
    KindPermissions {
        kind: PermissionKind::Iam,
        name: "iam",
        long_name: "IamRole",
        statements: &[StatementPermissions {
            sid: "XacctIamRoleTrustPolicies",
            actions: &[
                ("iam:GetRole", "read a role's trust policy"),
                (
                    "iam:UpdateAssumeRolePolicy",
                    "write the merged trust policy",
                ),
            ],
            resources: &["arn:{partition}:iam::*:role/*"],
            resource_note: "roles only; rewriting a trust policy decides who may assume that role, so narrow `role/*` to the roles grants may name (a path such as `role/shared/*`) so that it reaches neither this role nor other privileged roles",
        }],
    },
    KindPermissions {
        kind: PermissionKind::Rds,
        name: "rds",
        long_name: "SnapshotShare",
        statements: &[
            StatementPermissions {
                sid: "XacctRdsFindSnapshots",
                actions: &[
                    (
                        "rds:DescribeDBSnapshots",
                        "find a DB snapshot by identifier, the copy a share made of it, or the snapshots of a DB instance (latestOf)",
                    ),
                    (
                        "rds:DescribeDBClusterSnapshots",
                        "find a DB cluster snapshot by identifier, the copy a share made of it, or the snapshots of a DB cluster (latestOf)",
                    ),
                ],
                resources: &[
                    "arn:{partition}:rds:*:*:snapshot:*",
                    "arn:{partition}:rds:*:*:cluster-snapshot:*",
                    "arn:{partition}:rds:*:*:db:*",
                    "arn:{partition}:rds:*:*:cluster:*",
                ],
                resource_note: "read only, in any region (a share may name any region): snapshot and cluster-snapshot ARNs for a snapshot named by identifier, db and cluster ARNs for the snapshots of an instance or cluster (latestOf filters by DBInstanceIdentifier or DBClusterIdentifier); automated snapshots are `snapshot:rds:NAME`, which `snapshot:*` matches",
            },
            StatementPermissions {
                sid: "XacctRdsShareSnapshots",
                actions: &[
                    (
                        "rds:DescribeDBSnapshotAttributes",
                        "read the accounts a DB snapshot is shared with (its restore attribute)",
                    ),
                    (
                        "rds:DescribeDBClusterSnapshotAttributes",
                        "read the accounts a DB cluster snapshot is shared with",
                    ),
                    (
                        "rds:ModifyDBSnapshotAttribute",
                        "share a DB snapshot with the target accounts, and unshare the accounts only this share added",
                    ),
                    (
                        "rds:ModifyDBClusterSnapshotAttribute",
                        "share and unshare a DB cluster snapshot",
                    ),
                    (
                        "rds:ListTagsForResource",
                        "read the xacct.dev/share/ACCOUNT tags that record which shares shared a snapshot with which account",
                    ),
                    (
                        "rds:AddTagsToResource",
                        "record this share in those tags before sharing (a copy gets its first tags in the CopyDB(Cluster)Snapshot call itself)",
                    ),
                    (
                        "rds:RemoveTagsFromResource",
                        "drop those tags once an account is unshared",
                    ),
                    (
                        "rds:CopyDBSnapshot",
                        "copy a DB snapshot that cannot be shared as it is (automated, or encrypted with an AWS managed key) with spec.copyForSharing.kmsKeyId",
                    ),
                    (
                        "rds:CopyDBClusterSnapshot",
                        "the same for a DB cluster snapshot",
                    ),
                ],
                resources: &[
                    "arn:{partition}:rds:*:*:snapshot:*",
                    "arn:{partition}:rds:*:*:cluster-snapshot:*",
                ],
                resource_note: "snapshots only, in any region: no db or cluster ARN, so the tag actions cannot retag instances or clusters; the copy actions act on snapshots too (the source and the copy, both covered). Modify*SnapshotAttribute decides who may restore a snapshot: narrow the account `*`, or the snapshot names, where you can",
            },
            StatementPermissions {
                sid: "XacctRdsSnapshotKeys",
                actions: &[
                    (
                        "kms:DescribeKey",
                        "read the key of an encrypted snapshot and the spec.copyForSharing key (AWS managed? disabled or pending deletion?); CopyDB(Cluster)Snapshot with KmsKeyId also requires it of the caller on that key",
                    ),
                    (
                        "kms:ListGrants",
                        "find the grant this share made for an account (kms.mode Grant)",
                    ),
                    (
                        "kms:CreateGrant",
                        "give a target account the use of the snapshot's key (kms.mode Grant); CopyDB(Cluster)Snapshot with KmsKeyId also requires it of the caller on that key (RDS creates its grant on the caller's behalf)",
                    ),
                    (
                        "kms:RevokeGrant",
                        "take that grant back when the account is unshared (kms.mode Grant)",
                    ),
                    (
                        "kms:GetKeyPolicy",
                        "read the snapshot key's policy (kms.mode KeyPolicy, the default)",
                    ),
                    (
                        "kms:PutKeyPolicy",
                        "write the target accounts' statements into it, and remove them when unshared (kms.mode KeyPolicy)",
                    ),
                ],
                resources: &["arn:{partition}:kms:*:*:key/*"],
                resource_note: "keys only, in any region: the keys of the snapshots shared and of spec.copyForSharing. A statement of `rds` itself, so that `rds` without `kms` can share encrypted snapshots; with `kms` too, DescribeKey, GetKeyPolicy and PutKeyPolicy are in both statements. kms:CreateGrant is there because of Grant mode and because RDS requires kms:CreateGrant and kms:DescribeKey on the key of a copy (RDS User Guide, Authorizing use of a customer managed key); xacct calls no kms:Decrypt or kms:ReEncrypt*: RDS uses the keys of a copy (the source snapshot's and the copy's) through grants it creates on the caller's behalf, which `key/*` covers for both. The key policies must let IAM policies of the account grant access (the default key policy's root statement). Narrow `key/*` to the keys of the snapshots you share where you can: CreateGrant and PutKeyPolicy decide who may use a key",
            },
        ],
    },
    KindPermissions {
        kind: PermissionKind::SageMaker,
        name: "sagemaker",
        long_name: "SageMakerEndpoint",
        statements: &[
            StatementPermissions {
                sid: "XacctSageMakerEndpoints",
                actions: &[(
                    "sagemaker:DescribeEndpoint",
                    "check that a granted endpoint exists and read its ARN",
                )],
                resources: &["arn:{partition}:sagemaker:*:*:endpoint/*"],
                resource_note: "endpoints only, read only, in any region",
            },
            StatementPermissions {
                sid: "XacctSageMakerInvokeRoles",
                actions: &[
                    (
                        "iam:GetRole",
                        "read an invocation role's trust policy and its xacct.dev/created-by tag",
                    ),
                    (
                        "iam:CreateRole",
                        "create the invocation role of an endpoint on its first grant",
                    ),
                    (
                        "iam:TagRole",
                        "tag it xacct.dev/created-by in the same CreateRole call (AWS checks iam:TagRole for tags given to CreateRole), and retag a role handed over because others attached policies to it",
                    ),
                    (
                        "iam:UpdateAssumeRolePolicy",
                        "write the merged trust policy (who may assume the role)",
                    ),
                    (
                        "iam:GetRolePolicy",
                        "read the role's xacct inline policy (sagemaker:InvokeEndpoint on the endpoint)",
                    ),
                    ("iam:PutRolePolicy", "write that inline policy"),
                    (
                        "iam:ListRolePolicies",
                        "count the role's other inline policies against its size quota, and check nothing else was added before deleting it",
                    ),
                    (
                        "iam:ListAttachedRolePolicies",
                        "check no managed policy was attached before deleting the role",
                    ),
                    (
                        "iam:ListInstanceProfilesForRole",
                        "check the role is in no instance profile before deleting it",
                    ),
                    (
                        "iam:DeleteRolePolicy",
                        "remove the inline policy when its last grant goes",
                    ),
                    (
                        "iam:DeleteRole",
                        "delete the role xacct created when its last grant goes",
                    ),
                ],
                resources: &["arn:{partition}:iam::*:role/xacct-*"],
                resource_note: "only roles named xacct-*: the names xacct gives the roles it creates; xacct also refuses a role of such a name it did not tag as its own",
            },
        ],
    },
    KindPermissions {
        kind: PermissionKind::Sqs,
        name: "sqs",
        long_name: "SqsQueue",
        statements: &[StatementPermissions {
            sid: "XacctSqsQueuePolicies",
            actions: &[
                ("sqs:GetQueueUrl", "find a granted queue's URL by its name"),
                (
                    "sqs:GetQueueAttributes",
                    "read the queue policy (its Policy attribute)",
                ),
                (
                    "sqs:SetQueueAttributes",
                    "write the merged queue policy, or an empty one when only xacct's statements were in it",
                ),
            ],
            resources: &["arn:{partition}:sqs:*:*:*"],
            resource_note: "queues only, in any region; SetQueueAttributes can change a queue's other attributes too (IAM cannot scope it to Policy): narrow the account `*` and the queue names where you can",
        }],
    },
    KindPermissions {
        kind: PermissionKind::Sns,
        name: "sns",
        long_name: "SnsTopic",
        statements: &[StatementPermissions {
            sid: "XacctSnsTopicPolicies",
            actions: &[
                (
                    "sns:GetTopicAttributes",
                    "read the topic policy (its Policy attribute)",
                ),
                (
                    "sns:SetTopicAttributes",
                    "write the merged topic policy (a topic always has one: it is rewritten, never removed)",
                ),
            ],
            resources: &["arn:{partition}:sns:*:*:*"],
            resource_note: "topics only, in any region; SetTopicAttributes can change a topic's other attributes too: narrow the account `*` and the topic names where you can",
        }],
    },
    KindPermissions {
        kind: PermissionKind::SecretsManager,
        name: "secretsmanager",
        long_name: "Secret",
        statements: &[StatementPermissions {
            sid: "XacctSecretResourcePolicies",
            actions: &[
                (
                    "secretsmanager:DescribeSecret",
                    "find a granted secret's ARN by its name, and the KMS key it is encrypted with (for the grantee's kms:Decrypt)",
                ),
                (
                    "secretsmanager:GetResourcePolicy",
                    "read the secret's resource policy",
                ),
                (
                    "secretsmanager:PutResourcePolicy",
                    "write the merged resource policy (with BlockPublicPolicy)",
                ),
                (
                    "secretsmanager:DeleteResourcePolicy",
                    "remove a resource policy left empty, when only xacct's statements were in it",
                ),
            ],
            resources: &["arn:{partition}:secretsmanager:*:*:secret:*"],
            resource_note: "secrets only, in any region; no secretsmanager:GetSecretValue: xacct never reads a secret's value. Narrow the account `*` and the secret names where you can",
        }],
    },
    KindPermissions {
        kind: PermissionKind::Lambda,
        name: "lambda",
        long_name: "LambdaFunction",
        statements: &[StatementPermissions {
            sid: "XacctLambdaFunctionPolicies",
            actions: &[
                (
                    "lambda:GetFunction",
                    "check that a granted function exists and read its ARN",
                ),
                ("lambda:GetPolicy", "read the function's policy"),
                (
                    "lambda:AddPermission",
                    "add one of xacct's statements (Lambda writes a function policy statement by statement)",
                ),
                (
                    "lambda:RemovePermission",
                    "remove one of xacct's statements, by its statement id",
                ),
            ],
            resources: &["arn:{partition}:lambda:*:*:function:*"],
            resource_note: "functions only, in any region; AddPermission decides who may invoke a function: narrow the account `*` and the function names where you can",
        }],
    },
    KindPermissions {
        kind: PermissionKind::Events,
        name: "events",
        long_name: "EventBus",
        statements: &[StatementPermissions {
            sid: "XacctEventBusPolicies",
            actions: &[
                (
                    "events:DescribeEventBus",
                    "check that a granted bus exists, read its ARN and its policy",
                ),
                ("events:PutPermission", "write the merged bus policy"),
                (
                    "events:RemovePermission",
                    "remove one of xacct's statements by its statement id (before writing a policy without it, and when only xacct's statements were in it)",
                ),
            ],
            resources: &["arn:{partition}:events:*:*:event-bus/*"],
            resource_note: "event buses only, in any region; PutPermission decides who may put events on a bus: narrow the account `*` and the bus names where you can",
        }],
    },
    KindPermissions {
        kind: PermissionKind::Identity,
        name: "identity",
        long_name: "granteeSide",
        statements: &[
            StatementPermissions {
                sid: "XacctGranteeIdentityPolicies",
                actions: &[
                    (
                        "iam:GetRolePolicy",
                        "read xacct's inline policy on a grantee role (and the role's other inline policies, for its size quota)",
                    ),
                    (
                        "iam:PutRolePolicy",
                        "write xacct's inline policy on a grantee role",
                    ),
                    ("iam:DeleteRolePolicy", "remove it when no grant needs it"),
                    (
                        "iam:ListRolePolicies",
                        "find the role's other inline policies, which share its size quota",
                    ),
                    (
                        "iam:GetRole",
                        "tell a missing role from a role without xacct's policy",
                    ),
                    (
                        "iam:GetUserPolicy",
                        "read xacct's inline policy on a grantee user (and the user's other inline policies)",
                    ),
                    (
                        "iam:PutUserPolicy",
                        "write xacct's inline policy on a grantee user",
                    ),
                    ("iam:DeleteUserPolicy", "remove it when no grant needs it"),
                    (
                        "iam:ListUserPolicies",
                        "find the user's other inline policies, which share its size quota",
                    ),
                    (
                        "iam:GetUser",
                        "tell a missing user from a user without xacct's policy",
                    ),
                    (
                        "iam:GetInstanceProfile",
                        "find the role of an instanceProfile/NAME principal",
                    ),
                ],
                resources: &[
                    "arn:{partition}:iam::*:role/*",
                    "arn:{partition}:iam::*:user/*",
                    "arn:{partition}:iam::*:instance-profile/*",
                ],
                resource_note: "only xacct's inline policy (named xacct) is ever written or deleted, but IAM cannot scope an action to one policy name: narrow role/* and user/* to the roles and users grants may name (a path such as role/workloads/*), so that xacct cannot give itself or an administrator more access",
            },
            StatementPermissions {
                sid: "XacctGranteeBucketEncryption",
                actions: &[(
                    "s3:GetEncryptionConfiguration",
                    "find the KMS key a bucket encrypts objects with, for the grantee's kms:Decrypt",
                )],
                resources: &["arn:{partition}:s3:::*"],
                resource_note: "read only; in the bucket's account",
            },
            StatementPermissions {
                sid: "XacctGranteeBucketKeys",
                actions: &[(
                    "kms:DescribeKey",
                    "tell a customer managed bucket or secret key (usable across accounts) from aws/s3 or aws/secretsmanager (not usable), and read its ARN",
                )],
                resources: &["arn:{partition}:kms:*:*:key/*"],
                resource_note: "read only; in the bucket's or secret's account",
            },
        ],
    },
    KindPermissions {
        kind: PermissionKind::Gc,
        name: "gc",
        long_name: "garbageCollection",
        statements: &[
            StatementPermissions {
                sid: "XacctGcBuckets",
                actions: &[(
                    "s3:ListAllMyBuckets",
                    "list the account's buckets (ListBuckets)",
                )],
                resources: &["*"],
                resource_note: "ListBuckets names no bucket: S3 authorizes it on `*` only",
            },
            StatementPermissions {
                sid: "XacctGcRepositories",
                actions: &[(
                    "ecr:DescribeRepositories",
                    "list the account's repositories",
                )],
                resources: &["arn:{partition}:ecr:*:*:repository/*"],
                resource_note: "read only",
            },
            StatementPermissions {
                sid: "XacctGcKeys",
                actions: &[("kms:ListKeys", "list the account's keys")],
                resources: &["*"],
                resource_note: "ListKeys names no key: KMS authorizes it on `*` only",
            },
            StatementPermissions {
                sid: "XacctGcQueues",
                actions: &[("sqs:ListQueues", "list the account's queues")],
                resources: &["*"],
                resource_note: "ListQueues names no queue: SQS authorizes it on `*` only",
            },
            StatementPermissions {
                sid: "XacctGcTopics",
                actions: &[("sns:ListTopics", "list the account's topics")],
                resources: &["*"],
                resource_note: "ListTopics names no topic: SNS authorizes it on `*` only",
            },
            StatementPermissions {
                sid: "XacctGcSecrets",
                actions: &[(
                    "secretsmanager:ListSecrets",
                    "list the account's secrets (names and ARNs, never their values)",
                )],
                resources: &["*"],
                resource_note: "ListSecrets names no secret: Secrets Manager authorizes it on `*` only",
            },
            StatementPermissions {
                sid: "XacctGcFunctions",
                actions: &[("lambda:ListFunctions", "list the account's functions")],
                resources: &["*"],
                resource_note: "ListFunctions names no function: Lambda authorizes it on `*` only",
            },
            StatementPermissions {
                sid: "XacctGcEventBuses",
                actions: &[("events:ListEventBuses", "list the account's event buses")],
                resources: &["*"],
                resource_note: "ListEventBuses names no bus: EventBridge authorizes it on `*` only",
            },
            StatementPermissions {
                sid: "XacctGcRolesAndUsers",
                actions: &[
                    (
                        "iam:ListRoles",
                        "list the account's roles (their trust policies and xacct's inline policy on them)",
                    ),
                    (
                        "iam:ListUsers",
                        "list the account's users (xacct's inline policy on them)",
                    ),
                ],
                resources: &["*"],
                resource_note: "ListRoles and ListUsers name no role or user: IAM authorizes them on `*` only (the Service Authorization Reference lists no resource type for them)",
            },
        ],
    },
];

/// The role name `--role-name` defaults to: the name the documentation and examples give the role
/// xacct assumes in each managed account.
pub const DEFAULT_MANAGED_ROLE_NAME: &str = "xacct-manager";

/// What the permissions policy explicitly denies on the role it is attached to (and on the
/// controller's own role): rewriting who may assume it and what it may do. The Allow statements of
/// `iam`, `sagemaker` and `identity` reach `role/*` or `role/xacct-*`, which match these roles too;
/// an explicit Deny wins over any Allow, of this policy or of another one attached to the role.
pub const SELF_PROTECTED_ACTIONS: &[&str] = &[
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:UpdateRole",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:DeleteRole",
];

/// Sid of the explicit Deny of [`SELF_PROTECTED_ACTIONS`].
pub const SELF_PROTECTION_SID: &str = "XacctDenyChangesToItsOwnRoles";

/// Kinds named on the command line that this command refuses, and why.
const NOT_COVERED: &[(&str, &str)] = &[(
    "modelpackagegroup",
    "SageMaker model package group policies are not implemented in xacct yet, so the role xacct assumes needs no permission for them",
)];

/// Parses one `--kinds` value: `s3`, `ecr`, `kms`, `iam`, `rds`, `sagemaker`, `sqs`, `sns`,
/// `secretsmanager`, `lambda`, `events`, `identity` (or the
/// long name: the grant's ResourceKind, `SnapshotShare` for rds, `granteeSide` for identity).
pub fn parse_permission_kind(value: &str) -> Result<PermissionKind, String> {
    let wanted = value.trim().to_ascii_lowercase();
    if let Some(p) = PERMISSIONS
        .iter()
        .find(|p| p.name == wanted || p.long_name.to_ascii_lowercase() == wanted)
    {
        return Ok(p.kind);
    }
    let known = PERMISSIONS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ");
    match NOT_COVERED.iter().find(|(name, _)| *name == wanted) {
        Some((_, why)) => Err(format!("{why} (implemented kinds: {known})")),
        None => Err(format!(
            "unknown resource kind (implemented kinds: {known})"
        )),
    }
}

static PRINCIPAL_ARN_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(PRINCIPAL_ARN).unwrap_or_else(|e| panic!("built-in pattern does not compile: {e}"))
});
static EXTERNAL_ID_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(EXTERNAL_ID).unwrap_or_else(|e| panic!("built-in pattern does not compile: {e}"))
});

/// Parses `--controller-role-arn`: an IAM role ARN (a user or account root ARN is accepted too).
pub fn parse_controller_arn(value: &str) -> Result<String, String> {
    if PRINCIPAL_ARN_RE.is_match(value) && !value.contains(":sts::") {
        Ok(value.to_string())
    } else {
        Err("use the ARN of the IAM role xacct runs as, like arn:aws:iam::111122223333:role/xacct-controller".into())
    }
}

/// Parses `--role-name`: an IAM role name (1 to 64 letters, digits and `+=,.@_-`; no path).
pub fn parse_role_name(value: &str) -> Result<String, String> {
    let valid = (1..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if valid {
        Ok(value.to_string())
    } else {
        Err("use the name of the role (not its ARN or path): 1 to 64 letters, digits and +=,.@_-, like xacct-manager".into())
    }
}

/// Parses `--external-id` (the rule AWS and the AwsAccount CRD apply).
pub fn parse_external_id(value: &str) -> Result<String, String> {
    if EXTERNAL_ID_RE.is_match(value) {
        Ok(value.to_string())
    } else {
        Err("an external id is 2 to 1224 characters of letters, digits and +=,.@:/-".into())
    }
}

/// The two policies and what goes with them.
#[derive(Debug, Clone)]
pub struct IamPolicies {
    /// The kinds covered, in table order.
    pub kinds: Vec<&'static KindPermissions>,
    /// The permissions policy of the role xacct assumes in each managed account.
    pub permissions: PolicyDocument,
    /// That role's trust policy.
    pub trust: PolicyDocument,
    /// What to know when using them.
    pub notes: Vec<String>,
}

/// Builds both policies for `kinds` (every kind but `gc` when empty), for the role named
/// `role_name` in each managed account.
pub fn build(
    kinds: &[PermissionKind],
    role_name: &str,
    controller_role_arn: &str,
    external_id: Option<&str>,
) -> Result<IamPolicies, PolicyError> {
    // Garbage collection is opt-in, and lists on `*`: only when asked for.
    let selected: Vec<&'static KindPermissions> = PERMISSIONS
        .iter()
        .filter(|p| {
            if kinds.is_empty() {
                p.kind != PermissionKind::Gc
            } else {
                kinds.contains(&p.kind)
            }
        })
        .collect();
    let partition = controller_role_arn.split(':').nth(1).unwrap_or("aws");

    let resources = |s: &StatementPermissions| -> Vec<String> {
        s.resources
            .iter()
            .map(|r| r.replace("{partition}", partition))
            .collect()
    };

    let mut permissions = PolicyDocument::new();
    for s in selected.iter().flat_map(|p| p.statements) {
        let actions: Vec<&str> = s.actions.iter().map(|(action, _)| *action).collect();
        let resource = match resources(s).as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        permissions.statements.push(Statement::from_json(json!({
            "Sid": s.sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": resource,
        }))?);
    }

    // The Allow statements above may reach the role itself (`role/*`, `role/xacct-*`): deny it,
    // and the controller's role, every change to who may assume them and what they may do.
    let self_protected = selected
        .iter()
        .flat_map(|p| p.statements)
        .flat_map(|s| s.actions)
        .any(|(action, _)| SELF_PROTECTED_ACTIONS.contains(action));
    let mut protected_roles = vec![
        format!("arn:{partition}:iam::*:role/{role_name}"),
        format!("arn:{partition}:iam::*:role/*/{role_name}"),
    ];
    if controller_role_arn.contains(":role/") {
        protected_roles.push(controller_role_arn.to_string());
    }
    if self_protected {
        permissions.statements.push(Statement::from_json(json!({
            "Sid": SELF_PROTECTION_SID,
            "Effect": "Deny",
            "Action": SELF_PROTECTED_ACTIONS,
            "Resource": protected_roles,
        }))?);
    }

    let mut assume = Map::new();
    assume.insert("Sid".into(), json!("XacctControllerAssumesThisRole"));
    assume.insert("Effect".into(), json!("Allow"));
    assume.insert("Principal".into(), json!({"AWS": controller_role_arn}));
    assume.insert("Action".into(), json!("sts:AssumeRole"));
    if let Some(id) = external_id {
        assume.insert(
            "Condition".into(),
            json!({"StringEquals": {"sts:ExternalId": id}}),
        );
    }
    let mut trust = PolicyDocument::new();
    trust
        .statements
        .push(Statement::from_json(Value::Object(assume))?);

    let mut notes = vec![
        "Attach the permissions policy to the role each AwsAccount names in spec.assumeRole.roleArn (one role per managed account; this document fits every one). An AwsAccount without assumeRole is reached with the controller's own credentials: attach the permissions policy to the controller's role instead.".to_string(),
        format!(
            "The controller's role ({controller_role_arn}) also needs sts:AssumeRole on those roles in its own identity policy when it is in another account: cross-account AssumeRole needs both sides."
        ),
        "sts:GetCallerIdentity (the account check after AssumeRole) needs no permission.".to_string(),
    ];
    if external_id.is_some() {
        notes.push("Set the same external id in each AwsAccount's spec.assumeRole.externalId (or externalIdSecretRef for the controller).".into());
    }
    if controller_role_arn == PLACEHOLDER_CONTROLLER_ROLE_ARN {
        notes.push(format!(
            "{PLACEHOLDER_CONTROLLER_ROLE_ARN} is a placeholder: pass --controller-role-arn with the role xacct runs as (its IRSA or Pod Identity role, say)."
        ));
    }
    for s in selected.iter().flat_map(|p| p.statements) {
        notes.push(format!(
            "{} ({}): {}.",
            s.sid,
            resources(s).join(", "),
            s.resource_note
        ));
    }
    if self_protected {
        notes.push(format!(
            "{SELF_PROTECTION_SID} ({}): the role this policy is attached to ({role_name}, in any account and under any path: pass --role-name if yours is named otherwise) and the controller's role may not change their own trust policy, inline, managed or boundary policies, tags or settings, nor be deleted, whatever else allows it: the Allow statements on role/* and role/xacct-* would otherwise reach them.",
            protected_roles.join(", ")
        ));
    }
    Ok(IamPolicies {
        kinds: selected,
        permissions,
        trust,
        notes,
    })
}

/// The policies as one JSON object.
pub fn json(policies: &IamPolicies) -> Value {
    // An action in two statements (kms:DescribeKey of `kms` and of `rds`) has both reasons.
    let mut actions = Map::new();
    for (action, why) in policies
        .kinds
        .iter()
        .flat_map(|p| p.statements)
        .flat_map(|s| s.actions)
    {
        let why = match actions.get(*action).and_then(Value::as_str) {
            Some(before) => format!("{before}; also {why}"),
            None => why.to_string(),
        };
        actions.insert(action.to_string(), json!(why));
    }
    json!({
        "kinds": policies.kinds.iter().map(|p| p.name).collect::<Vec<_>>(),
        "permissionsPolicy": policies.permissions.to_json(),
        "trustPolicy": policies.trust.to_json(),
        "actions": actions,
        "notes": policies.notes,
    })
}

/// The policies for people: each document labelled, then why each action is there, then notes.
pub fn text(policies: &IamPolicies) -> String {
    let mut out = String::new();
    let kinds: Vec<&str> = policies.kinds.iter().map(|p| p.name).collect();
    let _ = writeln!(
        out,
        "# Permissions policy of the role xacct assumes in each managed account (kinds: {})",
        kinds.join(", ")
    );
    let _ = writeln!(out, "{}", policies.permissions.to_pretty_string());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# Trust policy of that role: the controller's role may assume it"
    );
    let _ = writeln!(out, "{}", policies.trust.to_pretty_string());
    let _ = writeln!(out);
    let _ = writeln!(out, "# Why each action");
    for s in policies.kinds.iter().flat_map(|p| p.statements) {
        for (action, why) in s.actions {
            let _ = writeln!(out, "#   {action} ({}): {why}", s.sid);
        }
    }
    let _ = writeln!(out, "# Notes");
    for note in &policies.notes {
        let _ = writeln!(out, "#   - {note}");
    }
    out
}

/// Runs `xacct iam-policy` for `kinds`; returns the exit status.
pub fn run(
    kinds: &[PermissionKind],
    role_name: &str,
    controller_role_arn: &str,
    external_id: Option<&str>,
    output: Output,
) -> i32 {
    match build(kinds, role_name, controller_role_arn, external_id) {
        Ok(policies) => {
            match output {
                Output::Json => super::emit(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&json(&policies)).unwrap_or_default()
                )),
                Output::Text => super::emit(&text(&policies)),
            }
            0
        }
        Err(e) => {
            eprintln!("xacct iam-policy: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_exactly_one_entry_and_every_resource_kind_is_one() {
        for kind in [
            PermissionKind::S3,
            PermissionKind::Ecr,
            PermissionKind::Kms,
            PermissionKind::Iam,
            PermissionKind::Rds,
            PermissionKind::SageMaker,
            PermissionKind::Sqs,
            PermissionKind::Sns,
            PermissionKind::SecretsManager,
            PermissionKind::Lambda,
            PermissionKind::Events,
            PermissionKind::Identity,
            PermissionKind::Gc,
        ] {
            // Exhaustive: a new PermissionKind does not compile here until it is listed above and
            // given its permissions in PERMISSIONS.
            match kind {
                PermissionKind::S3
                | PermissionKind::Ecr
                | PermissionKind::Kms
                | PermissionKind::Iam
                | PermissionKind::Rds
                | PermissionKind::SageMaker
                | PermissionKind::Sqs
                | PermissionKind::Sns
                | PermissionKind::SecretsManager
                | PermissionKind::Lambda
                | PermissionKind::Events
                | PermissionKind::Identity
                | PermissionKind::Gc => {}
            }
            assert_eq!(
                PERMISSIONS.iter().filter(|p| p.kind == kind).count(),
                1,
                "{kind:?}"
            );
            if let Some(resource_kind) = kind.resource_kind() {
                assert_eq!(PermissionKind::from(resource_kind), kind);
                assert_eq!(
                    PERMISSIONS
                        .iter()
                        .find(|p| p.kind == kind)
                        .unwrap()
                        .long_name,
                    format!("{resource_kind:?}")
                );
            }
        }
        // A new ResourceKind does not compile in From<ResourceKind> until it has its kind.
    }

    #[test]
    fn actions_belong_to_their_statement_s_service_and_sids_are_iam_sids() {
        let mut sids = std::collections::BTreeSet::new();
        for p in PERMISSIONS {
            assert!(!p.statements.is_empty(), "{}", p.name);
            for (i, s) in p.statements.iter().enumerate() {
                let service = s.actions[0].0.split(':').next().unwrap();
                if i == 0 {
                    let own = match p.kind {
                        PermissionKind::Identity => "iam",
                        PermissionKind::Gc => "s3",
                        _ => p.name,
                    };
                    assert_eq!(
                        service, own,
                        "a kind's first statement is its own service's"
                    );
                }
                for (action, _) in s.actions {
                    assert!(
                        action.starts_with(&format!("{service}:")),
                        "{action} in {}",
                        s.sid
                    );
                    assert!(!action.contains('*'), "{action}: no wildcards");
                }
                assert!(s.sid.chars().all(|c| c.is_ascii_alphanumeric()));
                assert!(sids.insert(s.sid), "{} is used twice", s.sid);
                assert!(!s.resources.is_empty(), "{}", s.sid);
                // Only listing (opt-in garbage collection) needs `*`: those calls name no resource.
                if p.kind != PermissionKind::Gc {
                    assert!(s.resources.iter().all(|r| *r != "*"), "{}", s.sid);
                }
            }
        }
    }

    #[test]
    fn kinds_parse_and_unimplemented_ones_are_refused() {
        assert_eq!(parse_permission_kind("s3"), Ok(PermissionKind::S3));
        assert_eq!(parse_permission_kind("KmsKey"), Ok(PermissionKind::Kms));
        assert_eq!(parse_permission_kind("rds"), Ok(PermissionKind::Rds));
        assert_eq!(
            parse_permission_kind("SnapshotShare"),
            Ok(PermissionKind::Rds)
        );
        assert_eq!(
            parse_permission_kind("SageMakerEndpoint"),
            Ok(PermissionKind::SageMaker)
        );
        assert!(
            parse_permission_kind("modelPackageGroup")
                .unwrap_err()
                .contains("not implemented")
        );
        assert_eq!(
            parse_permission_kind("Secret"),
            Ok(PermissionKind::SecretsManager)
        );
        assert!(
            parse_permission_kind("stepfunctions")
                .unwrap_err()
                .contains("unknown")
        );
    }

    #[test]
    fn rds_has_its_own_key_statement() {
        let p = build(
            &[PermissionKind::Rds],
            DEFAULT_MANAGED_ROLE_NAME,
            PLACEHOLDER_CONTROLLER_ROLE_ARN,
            None,
        )
        .unwrap();
        let doc = p.permissions.to_json();
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[2]["Sid"], "XacctRdsSnapshotKeys");
        assert_eq!(statements[2]["Resource"], json!("arn:aws:kms:*:*:key/*"));
        assert!(
            statements[..2]
                .iter()
                .all(|s| s["Resource"].as_array().is_some_and(|r| r.len() >= 2))
        );
        // With kms too, an action in both statements keeps both reasons.
        let both = json(
            &build(
                &[PermissionKind::Kms, PermissionKind::Rds],
                DEFAULT_MANAGED_ROLE_NAME,
                PLACEHOLDER_CONTROLLER_ROLE_ARN,
                None,
            )
            .unwrap(),
        );
        let why = both["actions"]["kms:DescribeKey"].as_str().unwrap();
        assert!(
            why.contains("alias") && why.contains("copyForSharing"),
            "{why}"
        );
    }

    #[test]
    fn partition_follows_the_controller_role() {
        let p = build(
            &[PermissionKind::S3],
            DEFAULT_MANAGED_ROLE_NAME,
            "arn:aws-cn:iam::111122223333:role/x",
            None,
        )
        .unwrap();
        assert_eq!(
            p.permissions.to_json()["Statement"][0]["Resource"],
            json!("arn:aws-cn:s3:::*")
        );
        assert!(parse_controller_arn("arn:aws:sts::111122223333:assumed-role/x/y").is_err());
        assert!(parse_controller_arn(PLACEHOLDER_CONTROLLER_ROLE_ARN).is_ok());
    }
}
