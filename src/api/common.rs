//! Types shared by several kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The standard `metav1.Condition` shape, so kstatus, `kubectl wait`, Flux and Argo CD understand it.
pub type Condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// What happens in AWS when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Revoke what this resource granted.
    #[default]
    Delete,
    /// Leave AWS as it is.
    Retain,
}
