//! Controller errors: failures talking to Kubernetes. Grant-level failures (AWS, bad specs) are not
//! errors here: they become status conditions and events.

use thiserror::Error;

/// A failure of the controller itself.
#[derive(Debug, Error)]
pub enum ControllerError {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// An AwsAccount being deleted is still used by grants.
    #[error("{0}")]
    AccountInUse(String),
    /// The CRDs are not installed in the cluster.
    #[error("the xacct CRDs are not installed (kubectl apply -f crds/): {0}")]
    CrdsMissing(String),
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(String),
    /// The metrics and health server failed.
    #[error("metrics server: {0}")]
    Http(String),
}
