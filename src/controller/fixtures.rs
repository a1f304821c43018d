//! Builders for the controller's unit tests: a grant on a bucket, its places as the engine plans
//! them and as its status records them, and the engine's reports.

use serde_json::json;

use crate::api::{CrossAccountGrant, GrantedTarget, PolicyKind, PolicyLocation};
use crate::engine::{PlannedTarget, Report, TargetReport};

/// The grant `batch/<name>` (uid `uid-<name>`, generation 1): read access to the S3 bucket
/// `bucket` of the AwsAccount `data-prod`, for `role/Job` of the AwsAccount `dev`.
pub fn grant(name: &str, bucket: &str) -> CrossAccountGrant {
    serde_json::from_value(json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
        "metadata": {"name": name, "namespace": "batch", "uid": format!("uid-{name}"), "generation": 1},
        "spec": {"resource": {"account": "data-prod", "kind": "S3Bucket", "name": bucket},
                 "grantee": {"account": "dev", "principals": ["role/Job"]}, "access": ["read"]}}))
    .expect("a grant")
}

/// The grant's place in `bucket`'s policy, as the engine plans it.
pub fn place(bucket: &str) -> PlannedTarget {
    PlannedTarget {
        arn: format!("arn:aws:s3:::{bucket}"),
        location: PolicyLocation {
            account: "data-prod".into(),
            kind: PolicyKind::S3BucketPolicy,
            name: bucket.into(),
        },
        region: "us-east-1".into(),
        sids: vec!["XacctA".into()],
        size: None,
    }
}

/// That place as a status records it, holding the statements of `generation`.
pub fn granted(bucket: &str, generation: i64) -> GrantedTarget {
    let place = place(bucket);
    GrantedTarget {
        arn: place.arn,
        resource: grant("any", bucket).spec.resource,
        policy: Some(place.location),
        region: Some(place.region),
        sids: place.sids,
        size: None,
        last_applied: None,
        generation: Some(generation),
    }
}

/// `action` on `bucket`'s policy, carried out when `done`, for no grant and with no change.
pub fn target_report(bucket: &str, action: &'static str, done: bool) -> TargetReport {
    TargetReport {
        arn: format!("arn:aws:s3:::{bucket}"),
        account: "data-prod".into(),
        account_id: "222222222222".into(),
        kind: "S3BucketPolicy".into(),
        action,
        done,
        grants: Vec::new(),
        changes: Vec::new(),
        size: None,
        notes: Vec::new(),
        error: None,
    }
}

/// The report of an apply that went through `targets`.
pub fn report(targets: Vec<TargetReport>) -> Report {
    Report {
        operation: "apply",
        dry_run: false,
        targets,
        grants: Vec::new(),
    }
}
