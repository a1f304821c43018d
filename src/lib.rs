//! xacct: cross-account AWS access, declared as Kubernetes resources and converged statement by
//! statement.
//!
//! Layers: [`api`] (the resource types), [`policy`] (the pure IAM policy model), [`aws`] (the only
//! code that talks to AWS), [`engine`] (desired state → plan → apply), [`cli`].
#![forbid(unsafe_code)]

pub mod api;
pub mod aws;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod policy;
