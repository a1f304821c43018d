//! Access presets: which IAM actions each one stands for, per kind of resource.
//!
//! Sources: ../shared/reference/aws-cross-account-facts.md (S3 §5, ECR §4, KMS §3, STS §7); SQS,
//! SNS and Secrets Manager: each service's "cross-account access" page of its developer guide.

use crate::api::{AccessPreset, ResourceKind};

/// The IAM service prefix of a kind's actions.
pub fn service_prefix(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::S3Bucket => "s3",
        ResourceKind::EcrRepository => "ecr",
        ResourceKind::KmsKey => "kms",
        ResourceKind::IamRole => "sts",
        ResourceKind::SageMakerEndpoint => "sagemaker",
        ResourceKind::SqsQueue => "sqs",
        ResourceKind::SnsTopic => "sns",
        ResourceKind::Secret => "secretsmanager",
        ResourceKind::LambdaFunction => "lambda",
        ResourceKind::EventBus => "events",
    }
}

/// The presets that apply to a kind.
pub fn presets_for(kind: ResourceKind) -> &'static [AccessPreset] {
    use AccessPreset::*;
    match kind {
        ResourceKind::S3Bucket => &[Read, Write, ReadWrite],
        ResourceKind::EcrRepository => &[Pull, Push, PullPush],
        ResourceKind::KmsKey => &[Decrypt, Encrypt, EncryptDecrypt, Grant, Describe],
        ResourceKind::IamRole => &[Assume],
        ResourceKind::SageMakerEndpoint => &[Invoke],
        ResourceKind::SqsQueue => &[Send, Consume],
        ResourceKind::SnsTopic => &[Publish, Subscribe],
        ResourceKind::Secret => &[Read],
        ResourceKind::LambdaFunction => &[Invoke],
        ResourceKind::EventBus => &[PutEvents],
    }
}

/// S3 object reads.
pub const S3_OBJECT_READ: &[&str] = &["s3:GetObject", "s3:GetObjectVersion"];
/// S3 object writes, multipart uploads included.
pub const S3_OBJECT_WRITE: &[&str] = &[
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
];
/// S3 bucket-level actions for readers.
pub const S3_BUCKET_READ: &[&str] = &["s3:GetBucketLocation", "s3:ListBucket"];
/// S3 bucket-level actions for writers.
pub const S3_BUCKET_WRITE: &[&str] = &["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"];
/// ECR pulls.
pub const ECR_PULL: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
];
/// ECR pushes (the layer check is needed to push too).
pub const ECR_PUSH: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
];
/// KMS decryption.
pub const KMS_DECRYPT: &[&str] = &["kms:Decrypt", "kms:DescribeKey"];
/// KMS encryption and data keys.
pub const KMS_ENCRYPT: &[&str] = &[
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
];
/// KMS grants for AWS services (conditioned on `kms:GrantIsForAWSResource`).
pub const KMS_GRANT: &[&str] = &["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"];
/// KMS describe.
pub const KMS_DESCRIBE: &[&str] = &["kms:DescribeKey"];
/// Role assumption.
pub const STS_ASSUME: &[&str] = &["sts:AssumeRole"];
/// SageMaker endpoint invocation, every form.
pub const SAGEMAKER_INVOKE: &[&str] = &[
    "sagemaker:InvokeEndpoint",
    "sagemaker:InvokeEndpointAsync",
    "sagemaker:InvokeEndpointWithResponseStream",
];
/// SQS: sending (the queue's URL and attributes to find it and check it).
pub const SQS_SEND: &[&str] = &[
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:SendMessage",
];
/// SQS: consuming.
pub const SQS_CONSUME: &[&str] = &[
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
];
/// SNS: publishing.
pub const SNS_PUBLISH: &[&str] = &["sns:Publish"];
/// SNS: subscribing an endpoint (a queue, a function) of the grantee's account.
pub const SNS_SUBSCRIBE: &[&str] = &["sns:GetTopicAttributes", "sns:Subscribe"];
/// Secrets Manager: reading a secret's value.
pub const SECRET_READ: &[&str] = &[
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
];
/// Lambda: invoking a function.
pub const LAMBDA_INVOKE: &[&str] = &["lambda:InvokeFunction"];
/// EventBridge: putting events on a bus.
pub const EVENTS_PUT: &[&str] = &["events:PutEvents"];
/// What only the caller's account can allow for ECR: the registry login, on `*`.
pub const ECR_LOGIN: &str = "ecr:GetAuthorizationToken";

/// The actions of a preset on a kind of resource, in the statement group they belong to.
pub fn preset_actions(
    kind: ResourceKind,
    preset: AccessPreset,
) -> Vec<(ActionGroup, &'static [&'static str])> {
    use AccessPreset::*;
    use ActionGroup::*;
    match preset {
        Read if kind == ResourceKind::Secret => vec![(Main, SECRET_READ)],
        Read => vec![(S3Bucket, S3_BUCKET_READ), (S3Objects, S3_OBJECT_READ)],
        Write => vec![(S3Bucket, S3_BUCKET_WRITE), (S3Objects, S3_OBJECT_WRITE)],
        ReadWrite => vec![
            (S3Bucket, S3_BUCKET_READ),
            (S3Bucket, S3_BUCKET_WRITE),
            (S3Objects, S3_OBJECT_READ),
            (S3Objects, S3_OBJECT_WRITE),
        ],
        Pull => vec![(Main, ECR_PULL)],
        Push => vec![(Main, ECR_PUSH)],
        PullPush => vec![(Main, ECR_PULL), (Main, ECR_PUSH)],
        Decrypt => vec![(Main, KMS_DECRYPT)],
        Encrypt => vec![(Main, KMS_ENCRYPT)],
        EncryptDecrypt => vec![(Main, KMS_DECRYPT), (Main, KMS_ENCRYPT)],
        Grant => vec![(KmsGrants, KMS_GRANT)],
        Describe => vec![(Main, KMS_DESCRIBE)],
        Assume => vec![(Main, STS_ASSUME)],
        Invoke if kind == ResourceKind::LambdaFunction => vec![(Main, LAMBDA_INVOKE)],
        Invoke => vec![(Main, SAGEMAKER_INVOKE)],
        Send => vec![(Main, SQS_SEND)],
        Consume => vec![(Main, SQS_CONSUME)],
        Publish => vec![(Main, SNS_PUBLISH)],
        Subscribe => vec![(Main, SNS_SUBSCRIBE)],
        PutEvents => vec![(Main, EVENTS_PUT)],
    }
}

/// Which statement of a grant an action goes in: statements differ by resource or condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionGroup {
    /// The single statement of ECR, KMS (use) and IAM grants.
    Main,
    /// S3 actions on the bucket ARN.
    S3Bucket,
    /// S3 actions on object ARNs.
    S3Objects,
    /// KMS grant management, limited to AWS services.
    KmsGrants,
}

/// Where an explicit action goes: S3 actions naming a bucket act on the bucket ARN, other S3
/// actions on objects, and wildcards on both.
pub fn groups_of_explicit(kind: ResourceKind, action: &str) -> &'static [ActionGroup] {
    use ActionGroup::*;
    match kind {
        ResourceKind::S3Bucket => {
            let name = action.split_once(':').map_or(action, |(_, n)| n);
            if name.contains('*') || name.contains('?') {
                &[S3Bucket, S3Objects]
            } else if name.contains("Bucket") {
                &[S3Bucket]
            } else {
                &[S3Objects]
            }
        }
        _ => &[Main],
    }
}

/// Checks an explicit action's shape and service; `Err` says what is wrong.
pub fn check_action(kind: ResourceKind, action: &str) -> Result<(), String> {
    let Some((service, name)) = action.split_once(':') else {
        return Err(format!("{action:?} is not an IAM action (service:Action)"));
    };
    let expected = service_prefix(kind);
    if kind == ResourceKind::SageMakerEndpoint && !SAGEMAKER_INVOKE.contains(&action) {
        return Err(format!(
            "{action:?}: actions on a SageMakerEndpoint are {}",
            SAGEMAKER_INVOKE.join(", ")
        ));
    }
    if service != expected {
        return Err(format!(
            "{action:?} is a {service} action; actions on a {kind:?} must be {expected}: actions"
        ));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
    {
        return Err(format!("{action:?} is not an IAM action name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_of_a_kind_uses_the_kinds_service() {
        for kind in [
            ResourceKind::S3Bucket,
            ResourceKind::EcrRepository,
            ResourceKind::KmsKey,
            ResourceKind::IamRole,
            ResourceKind::SageMakerEndpoint,
            ResourceKind::SqsQueue,
            ResourceKind::SnsTopic,
            ResourceKind::Secret,
            ResourceKind::LambdaFunction,
            ResourceKind::EventBus,
        ] {
            for preset in presets_for(kind) {
                for (_, actions) in preset_actions(kind, *preset) {
                    for action in actions {
                        assert_eq!(check_action(kind, action), Ok(()), "{preset:?} {action}");
                    }
                }
            }
        }
    }

    #[test]
    fn s3_actions_go_to_bucket_or_objects() {
        use ActionGroup::*;
        assert_eq!(
            groups_of_explicit(ResourceKind::S3Bucket, "s3:ListBucketVersions"),
            &[S3Bucket]
        );
        assert_eq!(
            groups_of_explicit(ResourceKind::S3Bucket, "s3:GetObjectTagging"),
            &[S3Objects]
        );
        assert_eq!(
            groups_of_explicit(ResourceKind::S3Bucket, "s3:Get*"),
            &[S3Bucket, S3Objects]
        );
    }

    #[test]
    fn wrong_service_and_bad_shapes_are_refused() {
        assert!(check_action(ResourceKind::S3Bucket, "ecr:BatchGetImage").is_err());
        assert!(check_action(ResourceKind::KmsKey, "kms:").is_err());
        assert!(check_action(ResourceKind::KmsKey, "Decrypt").is_err());
        assert!(check_action(ResourceKind::IamRole, "sts:Assume Role").is_err());
        assert!(check_action(ResourceKind::SageMakerEndpoint, "sagemaker:DeleteEndpoint").is_err());
        assert!(
            check_action(
                ResourceKind::SageMakerEndpoint,
                "sagemaker:InvokeEndpointAsync"
            )
            .is_ok()
        );
    }
}
