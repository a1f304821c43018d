//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::backoff::Backoff;
use super::index::{GrantIndex, ResourceKey};
use super::metrics::Metrics;
use crate::api::{AwsAccount, ResourceSpec, SnapshotShare};
use crate::aws::Connector;
use crate::engine::{AccountDirectory, Class, Engine, FieldError, Reason};

/// The field manager of every write xacct makes to Kubernetes objects.
pub const FIELD_MANAGER: &str = "xacct";

/// `Kind namespace/name` (or `Kind name`): how an object is named in logs, causes, backoff and
/// the engine's reports.
pub fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    let meta = object.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match &meta.namespace {
        Some(ns) => format!("{} {ns}/{name}", K::kind(&())),
        None => format!("{} {name}", K::kind(&())),
    }
}

/// Requeues a failed reconcile (a Kubernetes API failure) with per-object exponential backoff.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    object: std::sync::Arc<K>,
    error: &super::error::ControllerError,
    ctx: std::sync::Arc<Context>,
) -> kube::runtime::controller::Action {
    let key = object_key(object.as_ref());
    tracing::warn!(object = %key, %error, "reconcile failed");
    kube::runtime::controller::Action::requeue(ctx.backoff.next_delay(&key))
}

/// How soon an object waiting for AWS (a snapshot copy, a snapshot becoming available) is looked
/// at again.
pub const WAITING: Duration = Duration::from_secs(30);

/// The time source, replaceable in tests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Settings of the reconcilers.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// How often every object is checked again without a change (drift detection).
    pub resync: Duration,
    /// Namespace of `externalIdSecretRef` Secrets that name none.
    pub secrets_namespace: String,
}

/// Shared by the reconcilers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The engine (the CLI's, unchanged).
    pub engine: Engine,
    /// AWS credentials per account.
    pub connector: Arc<Connector>,
    /// Who reports the events.
    pub reporter: Reporter,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub settings: ReconcileSettings,
    /// Cached AwsAccounts.
    pub accounts: Store<AwsAccount>,
    /// The grants by resource key and by account, with their status, kept from the watches.
    pub index: Arc<RwLock<GrantIndex>>,
    /// Cached SnapshotShares.
    pub shares: Store<SnapshotShare>,
    /// External ids read from Secrets, by AwsAccount name (never logged).
    pub external_ids: RwLock<HashMap<String, String>>,
    /// Backoff for transient failures.
    pub backoff: Backoff,
    /// Now.
    pub clock: Clock,
}

impl Context {
    /// The managed accounts as the engine needs them, external ids from Secrets filled in.
    pub fn account_directory(&self) -> AccountDirectory {
        let external_ids = self.external_ids.read().unwrap_or_else(|e| e.into_inner());
        let mut missing = Vec::new();
        let accounts: Vec<AwsAccount> = self
            .accounts
            .state()
            .iter()
            .map(|a| {
                let account = (**a).clone();
                if !needs_secret(&account) {
                    return account;
                }
                let name = account.name_any();
                match external_ids.get(&name) {
                    Some(id) => with_external_id(account, id.clone()),
                    None => {
                        missing.push(name);
                        account
                    }
                }
            })
            .collect();
        let mut directory = AccountDirectory::new(accounts);
        for name in missing {
            directory.mark_invalid(
                &name,
                FieldError::new(
                    "spec.assumeRole.externalIdSecretRef",
                    "the external id Secret has not been read yet",
                ),
            );
        }
        directory
    }

    /// Why the AwsAccount `name` cannot be used yet, and when to look again; `None` when it can
    /// (or does not exist: a missing account is an invalid spec, reported by the engine).
    pub fn account_not_ready(&self, name: &str) -> Option<(String, std::time::Duration)> {
        let account = self.account(name)?;
        let conditions = account
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        if !super::conditions::is_ready(conditions) {
            let why = super::conditions::find(conditions, super::conditions::READY)
                .map_or("not verified yet".to_string(), |c| {
                    format!("{}: {}", c.reason, c.message)
                });
            // Its readiness changing brings the object back; the resync is the fallback.
            return Some((
                format!("AwsAccount {name} is not Ready ({why})"),
                self.settings.resync,
            ));
        }
        let has_secret = self
            .external_ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name);
        if needs_secret(&account) && !has_secret {
            // After a restart, until the account's reconcile has read the Secret again.
            return Some((
                format!("the external id Secret of AwsAccount {name} has not been read yet"),
                std::time::Duration::from_secs(5),
            ));
        }
        None
    }

    /// The cached AwsAccount named `name`.
    pub fn account(&self, name: &str) -> Option<Arc<AwsAccount>> {
        self.accounts.get(&ObjectRef::new(name))
    }

    /// The index, to read (a panic elsewhere while writing it leaves it usable).
    pub fn index(&self) -> RwLockReadGuard<'_, GrantIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The index, to change.
    pub fn index_mut(&self) -> RwLockWriteGuard<'_, GrantIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of `resource`, with its account's region as the index knows it.
    pub fn key_of(&self, resource: &ResourceSpec) -> ResourceKey {
        self.index().key_of(resource)
    }

    /// Records an event about `object` (a failure to record is logged, never fatal).
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        // Failures reach the logs too, with the object's span (kind, namespace, name).
        if type_ == EventType::Warning {
            tracing::warn!(reason, "{note}");
        }
        let event = Event {
            type_,
            reason: reason.to_string(),
            // The API server refuses notes over 1 kB.
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        // A recorder per event: kube-runtime's keeps each event it published for six minutes (to
        // count repeats as a series) and scans them all at every publish, which grows with the
        // number of grants converging at once.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish event");
        }
    }

    /// Writes `status` by server-side apply (field manager [`FIELD_MANAGER`]) unless it equals
    /// `previous`, so a steady state makes no write.
    pub async fn write_status<K, S>(
        &self,
        api: kube::Api<K>,
        object: &K,
        previous: Option<&S>,
        status: S,
    ) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        S: serde::Serialize + PartialEq,
    {
        if previous == Some(&status) {
            return Ok(());
        }
        let patch = serde_json::json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
        let name = object.meta().name.clone().unwrap_or_default();
        api.patch_status(
            &name,
            &kube::api::PatchParams::apply(FIELD_MANAGER).force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await?;
        Ok(())
    }

    /// When to look at the object `key` again after a reconcile that left it with `reason`, at
    /// the latest after `resync`: the one place a reason becomes a requeue.
    pub fn next_look(&self, key: &str, reason: Reason, resync: Duration) -> Duration {
        match reason.class() {
            Class::Settled => {
                self.backoff.reset(key);
                resync
            }
            Class::Waiting => WAITING.min(resync),
            // Back on a change of the object or of its accounts, else at the resync.
            Class::NeedsChange => resync,
            Class::Retry => self.retry_soon(key),
        }
    }

    /// A look again soon, with the object's backoff (at most the resync period).
    pub fn retry_soon(&self, key: &str) -> Duration {
        self.backoff.next_delay(key).min(self.settings.resync)
    }

    /// Now, from the clock.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }
}

/// Whether `account` takes its external id from a Secret.
fn needs_secret(account: &AwsAccount) -> bool {
    let role = account.spec.assume_role.as_ref();
    role.is_some_and(|r| r.external_id_secret_ref.is_some())
}

/// `account` with `id` as its external id in place of its Secret reference.
pub fn with_external_id(mut account: AwsAccount, id: String) -> AwsAccount {
    if let Some(role) = account.spec.assume_role.as_mut() {
        role.external_id = Some(id);
        role.external_id_secret_ref = None;
    }
    account
}

/// Whether the store holds its first full list (before that, a missing object may just not be
/// cached yet).
pub fn synced<K: Resource + Clone + 'static>(store: &Store<K>) -> bool
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use futures::FutureExt;
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}
