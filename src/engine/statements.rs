//! The statements a grant wants: in the resource's policy (with a Principal), in the grantee's
//! identity policies, and in the policy of the role xacct creates to invoke a SageMaker endpoint.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::actions::{
    ActionGroup, ECR_LOGIN, S3_OBJECT_WRITE, STS_ASSUME, groups_of_explicit, preset_actions,
};
use super::resolve::ResolvedGrant;
use crate::api::ResourceKind;
use crate::policy::{PolicyError, Statement, hex_digest};

/// S3 actions that take the `s3:prefix` condition key (listing).
const S3_LIST_ACTIONS: &[&str] = &["s3:ListBucket", "s3:ListBucketVersions"];

/// One statement before it is written for a side: what it allows on which ARN.
struct Shape<'a> {
    purpose: &'static str,
    actions: Vec<&'a str>,
    /// The ARNs the actions apply to (identity policies name them; resource policies may not).
    resources: Vec<String>,
    /// A condition xacct adds itself.
    condition: Option<(&'static str, &'static str, Value)>,
}

/// The grant's actions on `arn` (the bucket, repository, key, role or endpoint), split into the
/// statements they need. S3 without a prefix: one statement naming the bucket and its objects (AWS
/// matches each action to the resource type it applies to), so that its principal is written once;
/// with a prefix, bucket and object actions apart, listing apart under its `s3:prefix` condition
/// (which would block the object actions). KMS: grant management apart.
fn access_shapes<'a>(grant: &'a ResolvedGrant, arn: &str) -> Vec<Shape<'a>> {
    let mut groups: BTreeMap<ActionGroup, BTreeSet<&str>> = BTreeMap::new();
    for preset in &grant.access {
        for (group, actions) in preset_actions(grant.kind, *preset) {
            groups
                .entry(group)
                .or_default()
                .extend(actions.iter().copied());
        }
    }
    for action in &grant.actions {
        for group in groups_of_explicit(grant.kind, action) {
            groups.entry(*group).or_default().insert(action.as_str());
        }
    }
    let mut shapes: Vec<Shape> = Vec::new();
    for (group, actions) in groups {
        let actions: Vec<&str> = actions.into_iter().collect();
        let shape = |purpose, actions, resource: String, condition| Shape {
            purpose,
            actions,
            resources: vec![resource],
            condition,
        };
        match (grant.kind, group, grant.prefix.as_deref()) {
            (ResourceKind::S3Bucket, group, None) => {
                let resource = match group {
                    ActionGroup::S3Bucket => arn.to_string(),
                    _ => format!("{arn}/*"),
                };
                match shapes.iter_mut().find(|s| s.purpose == "Access") {
                    Some(access) => {
                        access.actions.extend(actions);
                        access.actions.sort_unstable();
                        access.actions.dedup();
                        access.resources.push(resource);
                    }
                    None => shapes.push(shape("Access", actions, resource, None)),
                }
            }
            (ResourceKind::S3Bucket, ActionGroup::S3Bucket, Some(prefix)) => {
                let (list, other): (Vec<&str>, Vec<&str>) = actions
                    .iter()
                    .partition(|a| S3_LIST_ACTIONS.iter().any(|l| l.eq_ignore_ascii_case(a)));
                if !list.is_empty() {
                    let condition = (
                        "StringLike",
                        "s3:prefix",
                        json!([prefix, format!("{prefix}*")]),
                    );
                    shapes.push(shape("List", list, arn.to_string(), Some(condition)));
                }
                if !other.is_empty() {
                    shapes.push(shape("Bucket", other, arn.to_string(), None));
                }
            }
            (ResourceKind::S3Bucket, _, Some(prefix)) => {
                shapes.push(shape("Objects", actions, format!("{arn}/{prefix}*"), None));
            }
            (ResourceKind::KmsKey, ActionGroup::KmsGrants, _) => {
                let aws_only = ("Bool", "kms:GrantIsForAWSResource", json!("true"));
                shapes.push(shape("Grants", actions, arn.to_string(), Some(aws_only)));
            }
            (kind, _, _) => shapes.push(shape(main_purpose(kind), actions, arn.to_string(), None)),
        }
    }
    shapes
}

/// The purpose word of a kind's one statement (S3's are per resource; KMS's grant management apart).
fn main_purpose(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::S3Bucket => "Access",
        ResourceKind::EcrRepository => "Repository",
        ResourceKind::KmsKey => "Use",
        ResourceKind::IamRole => "Assume",
        ResourceKind::SageMakerEndpoint => "Invoke",
        ResourceKind::SqsQueue => "Queue",
        ResourceKind::SnsTopic => "Topic",
        ResourceKind::Secret => "Secret",
        ResourceKind::LambdaFunction => "Function",
        ResourceKind::EventBus => "Bus",
    }
}

/// `sts:AssumeRole` on a role.
fn assume_shape(role_arn: &str) -> Shape<'static> {
    Shape {
        purpose: "Assume",
        actions: STS_ASSUME.to_vec(),
        resources: vec![role_arn.to_string()],
        condition: None,
    }
}

/// The grant's statements in the resource's own policy, `target_arn` being the resource's ARN
/// (for a SageMaker endpoint: the trust policy of the role xacct creates, whose ARN it is), each
/// with a Sid the grant owns, in Sid order. Fails only when the grant's condition block does not
/// read as IAM conditions.
pub fn resource_statements(
    grant: &ResolvedGrant,
    target_arn: &str,
) -> Result<Vec<Statement>, PolicyError> {
    let shapes = match grant.kind {
        ResourceKind::SageMakerEndpoint => vec![assume_shape(target_arn)],
        ResourceKind::LambdaFunction => return lambda_statements(grant, target_arn),
        _ => access_shapes(grant, target_arn),
    };
    let external_id = grant
        .external_id
        .as_ref()
        .map(|id| ("StringEquals", "sts:ExternalId", json!(id)));
    let mut statements = Vec::new();
    for shape in shapes {
        // Resource policies name the resource only where the service expects it.
        let resource = match grant.kind {
            ResourceKind::S3Bucket
            | ResourceKind::SqsQueue
            | ResourceKind::SnsTopic
            | ResourceKind::EventBus => Some(one_or_many(&shape.resources)),
            // A key's or a secret's policy is the resource's own: `*` is that resource.
            ResourceKind::KmsKey | ResourceKind::Secret => Some(json!("*")),
            _ => None,
        };
        let mut conditions: Vec<_> = shape.condition.into_iter().collect();
        if matches!(
            grant.kind,
            ResourceKind::IamRole | ResourceKind::SageMakerEndpoint
        ) {
            conditions.extend(external_id.clone());
        }
        statements.push(build(
            grant,
            shape.purpose,
            Some(&grant.principals),
            &shape.actions,
            resource,
            conditions,
            true,
        )?);
    }
    sorted(statements)
}

/// A Lambda function's statements: one per action and principal, as `AddPermission` writes them,
/// each named by its action and a hash of its principal; the only condition is an organization's.
fn lambda_statements(
    grant: &ResolvedGrant,
    function_arn: &str,
) -> Result<Vec<Statement>, PolicyError> {
    let mut statements = Vec::new();
    for shape in access_shapes(grant, function_arn) {
        for action in &shape.actions {
            let name = action.split_once(':').map_or(*action, |(_, name)| name);
            for principal in &grant.principals {
                let purpose = format!("{name}{}", principal_tag(principal));
                statements.push(build(
                    grant,
                    &purpose,
                    Some(std::slice::from_ref(principal)),
                    &[action],
                    Some(json!(function_arn)),
                    Vec::new(),
                    true,
                )?);
            }
        }
    }
    sorted(statements)
}

/// Six hex digits naming a principal in a Sid.
fn principal_tag(principal: &str) -> String {
    hex_digest(&[principal])[..6].to_string()
}

/// The inline policy of the role xacct creates for a SageMaker endpoint: invoking that endpoint.
/// The grant's conditions are checked when the role is assumed (trust policy and grantee side),
/// not again on the role's own session, whose context differs (no MFA, say).
pub fn invoke_role_statements(
    grant: &ResolvedGrant,
    endpoint_arn: &str,
) -> Result<Vec<Statement>, PolicyError> {
    let mut statements = Vec::new();
    for shape in access_shapes(grant, endpoint_arn) {
        statements.push(build(
            grant,
            shape.purpose,
            None,
            &shape.actions,
            Some(one_or_many(&shape.resources)),
            shape.condition.into_iter().collect(),
            false,
        )?);
    }
    sorted(statements)
}

/// What the grantee side needs besides the resource.
#[derive(Debug, Clone, Default)]
pub struct GranteeExtras {
    /// S3: the customer managed KMS key the bucket encrypts objects with; a secret's key.
    pub resource_key: Option<String>,
}

/// The grant's statements in each grantee role's or user's identity policy: the same access on the
/// resource's ARN (`resource_arn`; for a SageMaker endpoint, `sts:AssumeRole` on the role xacct
/// created), plus what only the caller's side can allow: the ECR registry login and the bucket's
/// KMS key.
pub fn grantee_statements(
    grant: &ResolvedGrant,
    resource_arn: &str,
    extras: &GranteeExtras,
) -> Result<Vec<Statement>, PolicyError> {
    let mut shapes = match grant.kind {
        ResourceKind::SageMakerEndpoint => vec![assume_shape(resource_arn)],
        _ => access_shapes(grant, resource_arn),
    };
    if grant.kind == ResourceKind::EcrRepository {
        shapes.push(Shape {
            purpose: "Login",
            actions: vec![ECR_LOGIN],
            resources: vec!["*".into()],
            condition: None,
        });
    }
    if let Some(key) = &extras.resource_key {
        let writes = shapes
            .iter()
            .flat_map(|s| &s.actions)
            .any(|a| S3_OBJECT_WRITE.contains(a) || a.ends_with('*'));
        let mut actions = vec!["kms:Decrypt"];
        if writes {
            actions.push("kms:GenerateDataKey");
        }
        shapes.push(Shape {
            purpose: match grant.kind {
                ResourceKind::Secret => "SecretKey",
                _ => "BucketKey",
            },
            actions,
            resources: vec![key.clone()],
            condition: None,
        });
    }
    let mut statements = Vec::new();
    for shape in shapes {
        statements.push(identity_statement(grant, shape)?);
    }
    sorted(statements)
}

fn identity_statement(grant: &ResolvedGrant, shape: Shape) -> Result<Statement, PolicyError> {
    build(
        grant,
        shape.purpose,
        None,
        &shape.actions,
        Some(one_or_many(&shape.resources)),
        shape.condition.into_iter().collect(),
        true,
    )
}

fn sorted(mut statements: Vec<Statement>) -> Result<Vec<Statement>, PolicyError> {
    statements.sort_by(|a, b| a.sid().cmp(&b.sid()));
    Ok(statements)
}

fn one_or_many<S: AsRef<str>>(items: &[S]) -> Value {
    match items {
        [one] => json!(one.as_ref()),
        many => Value::Array(many.iter().map(|s| json!(s.as_ref())).collect()),
    }
}

fn build(
    grant: &ResolvedGrant,
    purpose: &str,
    principals: Option<&[String]>,
    actions: &[&str],
    resource: Option<Value>,
    own_conditions: Vec<(&str, &str, Value)>,
    with_grant_conditions: bool,
) -> Result<Statement, PolicyError> {
    let mut map = Map::new();
    map.insert("Sid".into(), json!(grant.owner.sid(purpose)));
    map.insert("Effect".into(), json!("Allow"));
    if let Some(principals) = principals {
        map.insert(
            "Principal".into(),
            json!({ "AWS": one_or_many(principals) }),
        );
    }
    map.insert("Action".into(), one_or_many(actions));
    if let Some(resource) = resource {
        map.insert("Resource".into(), resource);
    }
    let mut condition = Map::new();
    let grant_conditions = grant.conditions.iter().filter(|_| with_grant_conditions);
    for (operator, keys) in grant_conditions {
        let keys: Map<String, Value> = keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        condition.insert(operator.clone(), Value::Object(keys));
    }
    for (operator, key, value) in own_conditions {
        let entry = condition
            .entry(operator.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(keys) = entry {
            keys.insert(key.to_string(), value);
        }
    }
    if !condition.is_empty() {
        map.insert("Condition".into(), Value::Object(condition));
    }
    Statement::from_json(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CrossAccountGrant, GranteeSide};
    use crate::engine::resolve::{AccountDirectory, Purpose, resolve_grant};

    fn resolved(resource: Value, access: Value) -> ResolvedGrant {
        let accounts = AccountDirectory::new(["data", "dev"].map(|name| {
            serde_json::from_value(json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount", "metadata": {"name": name},
                "spec": {"accountId": if name == "data" {"222222222222"} else {"111111111111"}, "allowedNamespaces": ["*"]}}))
            .expect("valid account")
        }));
        let grant: CrossAccountGrant = serde_json::from_value(json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"resource": resource, "grantee": {"account": "dev", "principals": ["role/Job"]}, "access": access}}))
        .expect("valid grant");
        resolve_grant(&grant, &accounts, "default", Purpose::Grant).expect("resolves")
    }

    fn by_purpose(statements: &[Statement], purpose: &str) -> Value {
        statements
            .iter()
            .find(|s| s.sid().is_some_and(|sid| sid.ends_with(purpose)))
            .map(|s| Value::Object(s.as_json().clone()))
            .unwrap_or(Value::Null)
    }

    #[test]
    fn the_grantee_side_names_the_resource_and_no_principal() {
        let g = resolved(
            json!({"account": "data", "kind": "S3Bucket", "name": "lake", "prefix": "in/"}),
            json!(["readWrite"]),
        );
        assert_eq!(g.grantee_side, GranteeSide::Manage);
        let extras = GranteeExtras {
            resource_key: Some("arn:aws:kms:us-east-1:222222222222:key/k".into()),
        };
        let side = grantee_statements(&g, "arn:aws:s3:::lake", &extras).expect("statements");
        assert!(side.iter().all(|s| s.as_json().get("Principal").is_none()));
        assert_eq!(
            by_purpose(&side, "Objects")["Resource"],
            json!("arn:aws:s3:::lake/in/*")
        );
        assert_eq!(
            by_purpose(&side, "List")["Condition"],
            json!({"StringLike": {"s3:prefix": ["in/", "in/*"]}})
        );
        // Writing through SSE-KMS needs a data key too.
        assert_eq!(
            by_purpose(&side, "BucketKey")["Action"],
            json!(["kms:Decrypt", "kms:GenerateDataKey"])
        );
        // The resource side has the same Sids, with the principal.
        let resource = resource_statements(&g, "arn:aws:s3:::lake").expect("statements");
        let sids = |s: &[Statement]| {
            s.iter()
                .filter_map(|s| s.sid().map(str::to_string))
                .collect::<Vec<_>>()
        };
        let mut without_key = sids(&side);
        without_key.retain(|s| !s.ends_with("BucketKey"));
        assert_eq!(sids(&resource), without_key);
        assert_eq!(
            by_purpose(&resource, "Objects")["Principal"],
            json!({"AWS": "arn:aws:iam::111111111111:role/Job"})
        );
    }

    #[test]
    fn ecr_pulls_log_in_on_the_grantee_side_only() {
        let g = resolved(
            json!({"account": "data", "kind": "EcrRepository", "name": "app"}),
            json!(["pull"]),
        );
        let repo = "arn:aws:ecr:us-east-1:222222222222:repository/app";
        let side = grantee_statements(&g, repo, &GranteeExtras::default()).expect("statements");
        assert_eq!(
            by_purpose(&side, "Login"),
            json!({"Sid": g.owner.sid("Login"), "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"})
        );
        assert_eq!(by_purpose(&side, "Repository")["Resource"], json!(repo));
        let resource = resource_statements(&g, repo).expect("statements");
        assert_eq!(by_purpose(&resource, "Login"), Value::Null);
        assert_eq!(by_purpose(&resource, "Repository").get("Resource"), None);
    }

    #[test]
    fn a_sagemaker_endpoint_is_reached_through_a_role() {
        let g = resolved(
            json!({"account": "data", "kind": "SageMakerEndpoint", "name": "churn"}),
            json!(["invoke"]),
        );
        let role = "arn:aws:iam::222222222222:role/xacct-churn-0011aabb";
        let endpoint = "arn:aws:sagemaker:us-east-1:222222222222:endpoint/churn";
        let trust = resource_statements(&g, role).expect("statements");
        assert_eq!(
            by_purpose(&trust, "Assume")["Action"],
            json!("sts:AssumeRole")
        );
        assert_eq!(by_purpose(&trust, "Assume").get("Resource"), None);
        let invoke = invoke_role_statements(&g, endpoint).expect("statements");
        assert_eq!(by_purpose(&invoke, "Invoke")["Resource"], json!(endpoint));
        assert_eq!(
            by_purpose(&invoke, "Invoke")["Action"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        let side = grantee_statements(&g, role, &GranteeExtras::default()).expect("statements");
        assert_eq!(
            by_purpose(&side, "Assume"),
            json!({"Sid": g.owner.sid("Assume"), "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role})
        );
    }

    #[test]
    fn without_a_prefix_bucket_and_objects_are_one_statement_naming_the_principal_once() {
        for (access, actions) in [
            (
                json!(["read"]),
                json!([
                    "s3:GetBucketLocation",
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:ListBucket"
                ]),
            ),
            (
                json!(["readWrite"]),
                json!([
                    "s3:AbortMultipartUpload",
                    "s3:DeleteObject",
                    "s3:GetBucketLocation",
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:ListBucket",
                    "s3:ListBucketMultipartUploads",
                    "s3:ListMultipartUploadParts",
                    "s3:PutObject"
                ]),
            ),
        ] {
            let g = resolved(
                json!({"account": "data", "kind": "S3Bucket", "name": "lake"}),
                access,
            );
            let resource = resource_statements(&g, "arn:aws:s3:::lake").expect("statements");
            assert_eq!(resource.len(), 1, "{resource:?}");
            let access = by_purpose(&resource, "Access");
            assert_eq!(
                access["Resource"],
                json!(["arn:aws:s3:::lake", "arn:aws:s3:::lake/*"])
            );
            assert_eq!(access["Action"], actions);
            assert_eq!(
                access["Principal"],
                json!({"AWS": "arn:aws:iam::111111111111:role/Job"})
            );
            let side = grantee_statements(&g, "arn:aws:s3:::lake", &GranteeExtras::default())
                .expect("statements");
            assert_eq!(by_purpose(&side, "Access")["Resource"], access["Resource"]);
        }
        // Object actions alone name the objects alone.
        let mut g = resolved(
            json!({"account": "data", "kind": "S3Bucket", "name": "lake"}),
            json!(["read"]),
        );
        g.access.clear();
        g.actions = vec!["s3:GetObject".into()];
        let resource = resource_statements(&g, "arn:aws:s3:::lake").expect("statements");
        assert_eq!(
            by_purpose(&resource, "Access")["Resource"],
            json!("arn:aws:s3:::lake/*")
        );
    }
}
