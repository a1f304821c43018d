//! The Kubernetes API of xacct: group `xacct.dev`, version `v1alpha1`.
//!
//! Only type definitions live here (kube derive + schemars). Validation that needs more than one
//! object (an account reference, a namespace allow-list) lives in the engine.

mod account;
mod common;
mod grant;
pub mod patterns;
mod snapshot;

pub use account::{
    AssumeRoleSpec, AwsAccount, AwsAccountSpec, AwsAccountStatus, SecretKeySelector,
};
pub use common::{Condition, DeletionPolicy};
pub use grant::{
    AccessPreset, CrossAccountGrant, CrossAccountGrantSpec, CrossAccountGrantStatus, GrantMode,
    GrantedTarget, GranteeSide, GranteeSpec, OrganizationSpec, PolicyKind, PolicyLocation,
    PolicySize, ResourceKind, ResourceSpec,
};

pub use snapshot::{
    CopyForSharing, KmsAccess, KmsMode, LatestOf, ShareTarget, ShareTargetStatus, SnapshotShare,
    SnapshotShareSpec, SnapshotShareStatus, SnapshotSource, SnapshotType,
};

/// The API group of every xacct resource.
pub const GROUP: &str = "xacct.dev";
/// The API version of every xacct resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "xacct.dev/v1alpha1";

/// The CustomResourceDefinitions of every kind, in a stable order.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        AwsAccount::crd(),
        CrossAccountGrant::crd(),
        SnapshotShare::crd(),
    ]
}
