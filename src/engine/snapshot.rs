//! Sharing RDS snapshots: pick the snapshot (or the newest of an instance or cluster), copy it when
//! it cannot be shared as it is, give the target accounts access to its KMS key, then share it.
//!
//! Ownership lives in AWS, like the Sids of policy statements: a tag `xacct.dev/share/ACCOUNT` on
//! the snapshot lists the shares (by their owner marker) that shared it with ACCOUNT. An account
//! shared by anyone else carries no such tag and is never unshared; a share only removes accounts
//! whose tag names it alone. Key policy statements go through the policy engine, one synthetic
//! grant per target account, so they merge like every other grant.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::GrantError;
use super::report::{ConditionReport, TargetReport};
use super::resolve::{AccountDirectory, account_access, namespace_allowed};
use super::{Class, Engine, GrantInput, Operation, Reason};
use crate::api::{
    AccessPreset, CrossAccountGrant, CrossAccountGrantSpec, DeletionPolicy, GranteeSpec, KmsMode,
    ResourceKind, ResourceSpec, ShareTargetStatus, SnapshotShare, SnapshotType,
};
use crate::aws::{AccountAccess, AwsError, SnapshotBackend, SnapshotInfo};
use crate::policy::{GrantOwner, partition_for_region};

/// AWS lets a manual snapshot be shared with 20 accounts.
pub const MAX_SHARED_ACCOUNTS: usize = 20;
const SHARE_TAG: &str = "xacct.dev/share/";
const COPY_OF_TAG: &str = "xacct.dev/copy-of";
const OWNER_TAG: &str = "xacct.dev/owner";

/// A share and where it came from.
#[derive(Debug, Clone)]
pub struct ShareInput {
    /// The share.
    pub share: SnapshotShare,
    /// Where it came from, for messages.
    pub origin: String,
}

/// What a run did (or would do) for one share.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ShareReport {
    /// `namespace/name`.
    pub name: String,
    /// Where it came from.
    pub origin: String,
    /// The snapshot shared (the copy, when one is made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_arn: Option<String>,
    /// The snapshot the shared one was copied from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
    /// Changes made (or, in a plan, that would be made), in order.
    pub steps: Vec<String>,
    /// The source account withdrew its consent, and this run took back everything the share
    /// gave (`targets` is then what it gives now: nothing).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub access_revoked: bool,
    /// Per target account.
    pub targets: Vec<ShareTargetStatus>,
    /// Key policies changed for the targets (KeyPolicy mode).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_policies: Vec<TargetReport>,
    /// The conditions its Kubernetes status would carry.
    pub conditions: Vec<ConditionReport>,
}

impl ShareReport {
    /// The `Ready` condition.
    pub fn ready(&self) -> Option<&ConditionReport> {
        self.conditions.iter().find(|c| c.type_ == "Ready")
    }

    /// Whether the share failed (waiting for a copy or a snapshot is not a failure).
    pub fn failed(&self) -> bool {
        self.ready()
            .is_some_and(|c| c.status != "True" && c.reason.is_failure())
    }

    /// Whether it waits for AWS (a copy or a snapshot becoming available).
    pub fn waiting(&self) -> bool {
        self.ready()
            .is_some_and(|c| c.reason.class() == Class::Waiting)
    }
}

/// Why a share did not converge.
#[derive(Debug)]
struct Failure {
    reason: Reason,
    message: String,
}

impl From<AwsError> for Failure {
    fn from(e: AwsError) -> Self {
        Failure {
            reason: GrantError::Aws(e.clone()).reason(),
            message: e.to_string(),
        }
    }
}

impl From<GrantError> for Failure {
    fn from(e: GrantError) -> Self {
        Failure {
            reason: e.reason(),
            message: e.to_string(),
        }
    }
}

fn fail(reason: Reason, message: impl Into<String>) -> Failure {
    Failure {
        reason,
        message: message.into(),
    }
}

/// The deterministic name of the copy a share makes of `source_id`: reused on later runs.
pub fn copy_identifier(marker: &str, source_id: &str) -> String {
    let digest: String = Sha256::digest(format!("{marker}\0{source_id}").as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut clean = String::new();
    for c in source_id.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && clean.ends_with('-')) {
            clean.push(c);
        }
    }
    let clean = clean.trim_matches('-');
    let mut id = format!("xacct-{digest}-{clean}");
    id.truncate(255);
    id.trim_end_matches('-').to_string()
}

/// Everything one share run needs.
struct ShareRun<'a> {
    engine: &'a Engine,
    backend: &'a dyn SnapshotBackend,
    accounts: &'a AccountDirectory,
    input: &'a ShareInput,
    account: AccountAccess,
    region: String,
    marker: String,
    dry_run: bool,
    report: ShareReport,
}

impl Engine {
    /// Converges (or, with `dry_run`, plans) snapshot shares. Needs [`Engine::with_snapshots`].
    pub async fn run_shares(
        &self,
        accounts: &AccountDirectory,
        shares: &[ShareInput],
        operation: Operation,
        dry_run: bool,
    ) -> Vec<ShareReport> {
        let mut reports = Vec::with_capacity(shares.len());
        for input in shares {
            let meta = &input.share.metadata;
            let name = format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or("default"),
                meta.name.as_deref().unwrap_or("")
            );
            let mut report = ShareReport {
                name,
                origin: input.origin.clone(),
                ..ShareReport::default()
            };
            let outcome = match self.snapshots.as_deref() {
                None => Err(fail(Reason::NotSupported, "this engine has no RDS access")),
                Some(backend) => {
                    match ShareRun::new(self, backend, accounts, input, operation, dry_run) {
                        Ok(mut run) => {
                            let outcome = match operation {
                                Operation::Apply => run.apply().await,
                                Operation::Delete => run.delete().await,
                            };
                            report = run.report;
                            outcome
                        }
                        // The account withdrew its consent: what the share gave is taken back
                        // (whatever its deletionPolicy, which is about deleting the share).
                        Err(refusal) if refusal.reason.withdraws_consent() => {
                            let revoke = Operation::Delete;
                            match ShareRun::new(self, backend, accounts, input, revoke, dry_run) {
                                Ok(mut run) => {
                                    let unshared = run.unshare().await;
                                    report = run.report;
                                    report.access_revoked = unshared.is_ok() && !dry_run;
                                    Err(withdrawn(refusal, unshared, &report, dry_run))
                                }
                                Err(_) => Err(refusal),
                            }
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            if !dry_run {
                // The AWS writes of the run (key policy writes are also logged by apply).
                for step in &report.steps {
                    tracing::info!(share = %report.name, "snapshot share: {step}");
                }
            }
            report.conditions = vec![condition(operation, dry_run, &report, outcome)];
            reports.push(report);
        }
        reports
    }
}

fn condition(
    operation: Operation,
    dry_run: bool,
    report: &ShareReport,
    outcome: Result<Done, Failure>,
) -> ConditionReport {
    let c = |status: &'static str, reason: Reason, message: String| ConditionReport {
        type_: "Ready",
        status,
        reason,
        message,
    };
    let what = report
        .snapshot_arn
        .clone()
        .unwrap_or_else(|| "the snapshot".into());
    match outcome {
        Err(f) => c("False", f.reason, f.message),
        Ok(Done::Retained) => c(
            "False",
            Reason::Retained,
            "deletionPolicy is Retain: the snapshot stays shared".into(),
        ),
        Ok(Done::Waiting(reason, message)) => c("False", reason, message),
        Ok(Done::Finished) => match (operation, dry_run, report.steps.is_empty()) {
            (Operation::Apply, _, true) => c(
                "True",
                Reason::Converged,
                format!("{what} is shared as declared"),
            ),
            (Operation::Apply, true, false) => c(
                "False",
                Reason::Pending,
                format!(
                    "{} change(s) pending: {}",
                    report.steps.len(),
                    report.steps.join("; ")
                ),
            ),
            (Operation::Apply, false, false) => c("True", Reason::Shared, report.steps.join("; ")),
            (Operation::Delete, true, false) => {
                c("False", Reason::UnsharePending, report.steps.join("; "))
            }
            (Operation::Delete, _, _) => c(
                "False",
                Reason::Unshared,
                if report.steps.is_empty() {
                    "nothing was shared by this share".into()
                } else {
                    report.steps.join("; ")
                },
            ),
        },
    }
}

/// The failure of a share whose account withdrew its consent, saying what revoking its access
/// did (`unshared`: the unsharing run).
fn withdrawn(
    refusal: Failure,
    unshared: Result<Done, Failure>,
    report: &ShareReport,
    dry_run: bool,
) -> Failure {
    let message = match (unshared, report.steps.is_empty(), dry_run) {
        (Err(e), _, _) => format!(
            "{}; its access is being revoked, but that failed ({}: {}) and is retried",
            refusal.message, e.reason, e.message
        ),
        (Ok(_), true, _) => format!(
            "{}; it has no access: nothing of it is shared",
            refusal.message
        ),
        (Ok(_), false, true) => format!(
            "{}; its access would be revoked: {}",
            refusal.message,
            report.steps.join("; ")
        ),
        (Ok(_), false, false) => format!(
            "{}; its access was revoked: {}",
            refusal.message,
            report.steps.join("; ")
        ),
    };
    fail(refusal.reason, message)
}

/// What `latestOf` or an identifier selects.
struct Sources {
    /// The snapshot to share, if there is one.
    newest: Option<SnapshotInfo>,
    /// Ids of the snapshots (and copies) that stay shared.
    keep: BTreeSet<String>,
    /// Every snapshot this share may have shared.
    all: Vec<SnapshotInfo>,
    /// What was looked for, for messages.
    what: String,
}

/// How a run ended when it did not fail.
enum Done {
    Finished,
    Retained,
    Waiting(Reason, String),
}

impl<'a> ShareRun<'a> {
    fn new(
        engine: &'a Engine,
        backend: &'a dyn SnapshotBackend,
        accounts: &'a AccountDirectory,
        input: &'a ShareInput,
        operation: Operation,
        dry_run: bool,
    ) -> Result<Self, Failure> {
        let share = &input.share;
        let namespace = share
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = share.metadata.name.clone().unwrap_or_default();
        if let Err(errors) = super::cel::validate(share) {
            let text: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field_path, e.message))
                .collect();
            return Err(fail(Reason::InvalidSpec, text.join("; ")));
        }
        if let Some(keep) = share
            .spec
            .source
            .latest_of
            .as_ref()
            .map(|l| l.keep)
            .filter(|k| !(1..=20).contains(k))
        {
            return Err(fail(
                Reason::InvalidSpec,
                format!("spec.source.latestOf.keep: must be 1 to 20, found {keep}"),
            ));
        }
        let Some(account) = accounts.get(&share.spec.source.account) else {
            return Err(fail(
                Reason::InvalidSpec,
                format!(
                    "spec.source.account: there is no AwsAccount named {:?}",
                    share.spec.source.account
                ),
            ));
        };
        if operation == Operation::Apply && !namespace_allowed(account, &namespace) {
            return Err(fail(
                Reason::NamespaceNotAllowed,
                format!(
                    "spec.source.account: AwsAccount {} does not allow shares from namespace {namespace}",
                    share.spec.source.account
                ),
            ));
        }
        let region = share
            .spec
            .source
            .region
            .clone()
            .unwrap_or_else(|| super::home_region(account.spec.region.as_deref()));
        let owner = GrantOwner::new(
            &engine.settings.instance_id,
            &namespace,
            &format!("SnapshotShare:{name}"),
        );
        Ok(ShareRun {
            engine,
            backend,
            accounts,
            input,
            account: account_access(account),
            region,
            marker: owner.sid_prefix(),
            dry_run,
            report: ShareReport {
                name: format!("{namespace}/{name}"),
                origin: input.origin.clone(),
                ..ShareReport::default()
            },
        })
    }

    fn share(&self) -> &SnapshotShare {
        &self.input.share
    }

    fn targets(&self) -> BTreeSet<String> {
        self.share()
            .spec
            .targets
            .iter()
            .map(|t| t.account_id.clone())
            .collect()
    }

    /// The snapshot the spec names (for `latestOf`, the newest available one, never a copy), and
    /// every snapshot this share may have shared: the source's snapshots of that type and xacct's
    /// copies of them. `keep` holds the ids that stay shared (with their copies).
    async fn sources(&self) -> Result<Sources, Failure> {
        let src = &self.share().spec.source;
        let (cluster, id) = match (
            &src.db_snapshot_identifier,
            &src.db_cluster_snapshot_identifier,
        ) {
            (Some(id), _) => (false, Some(id)),
            (_, Some(id)) => (true, Some(id)),
            _ => (
                src.latest_of
                    .as_ref()
                    .is_some_and(|l| l.db_cluster_identifier.is_some()),
                None,
            ),
        };
        if let Some(id) = id {
            let copy_id = copy_identifier(&self.marker, id);
            let snap = self
                .backend
                .describe(&self.account, &self.region, cluster, id)
                .await?;
            let copy = self
                .backend
                .describe(&self.account, &self.region, cluster, &copy_id)
                .await?;
            let all: Vec<SnapshotInfo> = snap.iter().chain(copy.iter()).cloned().collect();
            return Ok(Sources {
                newest: snap,
                keep: BTreeSet::from([id.clone(), copy_id]),
                all,
                what: format!("snapshot {id}"),
            });
        }
        let latest = src
            .latest_of
            .as_ref()
            .ok_or_else(|| fail(Reason::InvalidSpec, "spec.source: no snapshot selector"))?;
        let source_id = latest
            .db_instance_identifier
            .as_ref()
            .or(latest.db_cluster_identifier.as_ref())
            .cloned()
            .unwrap_or_default();
        let mut all = self
            .backend
            .list(&self.account, &self.region, cluster, &source_id, "manual")
            .await?;
        if latest.snapshot_type == SnapshotType::Automated {
            all.extend(
                self.backend
                    .list(
                        &self.account,
                        &self.region,
                        cluster,
                        &source_id,
                        "automated",
                    )
                    .await?,
            );
        }
        let wanted = match latest.snapshot_type {
            SnapshotType::Manual => "manual",
            SnapshotType::Automated => "automated",
        };
        // Copies xacct made are manual snapshots of the same source: never follow them.
        let mut candidates: Vec<&SnapshotInfo> = all
            .iter()
            .filter(|s| {
                s.snapshot_type == wanted && s.status == "available" && !s.id.starts_with("xacct-")
            })
            .collect();
        candidates.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        let kept: Vec<&SnapshotInfo> = candidates
            .into_iter()
            .take(latest.keep.max(1) as usize)
            .collect();
        let keep = kept
            .iter()
            .flat_map(|s| [s.id.clone(), copy_identifier(&self.marker, &s.id)])
            .collect();
        let newest = kept.first().map(|s| (*s).clone());
        Ok(Sources {
            newest,
            keep,
            all,
            what: format!("available {wanted} snapshot of {source_id}"),
        })
    }

    /// The snapshot that can be shared: `snap` itself, or its copy with the customer managed key.
    async fn shareable(
        &mut self,
        snap: &SnapshotInfo,
    ) -> Result<Result<SnapshotInfo, Done>, Failure> {
        let mut why = None;
        if snap.snapshot_type == "automated" {
            why =
                Some("it is an automated snapshot (AWS shares manual snapshots only)".to_string());
        } else if snap.encrypted {
            let key = snap.kms_key_id.clone().unwrap_or_default();
            let info = self
                .backend
                .key_info(&self.account, &self.region, &key)
                .await?;
            if info.aws_managed {
                why = Some(format!(
                    "it is encrypted with the AWS managed key {}, which cannot be shared",
                    info.arn
                ));
            }
        }
        let Some(why) = why else {
            return Ok(Ok(snap.clone()));
        };
        let Some(copy) = self.share().spec.copy_for_sharing.clone() else {
            return Err(fail(
                Reason::CopyRequired,
                format!(
                    "snapshot {} cannot be shared as it is: {why}; set spec.copyForSharing.kmsKeyId to share a copy",
                    snap.id
                ),
            ));
        };
        let key = self
            .backend
            .key_info(&self.account, &self.region, &copy.kms_key_id)
            .await?;
        if key.aws_managed {
            return Err(fail(
                Reason::InvalidSpec,
                format!(
                    "spec.copyForSharing.kmsKeyId: {} is an AWS managed key; use a customer managed key",
                    copy.kms_key_id
                ),
            ));
        }
        if let Some(state) = key.unusable {
            return Err(fail(
                Reason::KeyUnusable,
                format!("spec.copyForSharing.kmsKeyId: key {} is {state}", key.arn),
            ));
        }
        let copy_id = copy_identifier(&self.marker, &snap.id);
        self.report.copied_from = Some(snap.arn.clone());
        let existing = self
            .backend
            .describe(&self.account, &self.region, snap.cluster, &copy_id)
            .await?;
        let copied = match existing {
            Some(c) => c,
            None if self.dry_run => {
                self.report.steps.push(format!(
                    "copy {} to {copy_id} with key {}",
                    snap.id, key.arn
                ));
                return Ok(Err(Done::Finished));
            }
            None => {
                let tags = BTreeMap::from([
                    (COPY_OF_TAG.to_string(), snap.id.clone()),
                    (OWNER_TAG.to_string(), self.marker.clone()),
                ]);
                let c = self
                    .backend
                    .copy(&self.account, &self.region, snap, &copy_id, &key.arn, &tags)
                    .await?;
                self.report.steps.push(format!(
                    "copied {} to {} with key {}",
                    snap.id, c.id, key.arn
                ));
                c
            }
        };
        self.report.snapshot_arn = Some(copied.arn.clone());
        if copied.status != "available" {
            return Ok(Err(Done::Waiting(
                Reason::CopyInProgress,
                format!(
                    "copy {} is {}; sharing waits for it",
                    copied.id, copied.status
                ),
            )));
        }
        Ok(Ok(copied))
    }

    async fn apply(&mut self) -> Result<Done, Failure> {
        let sources = self.sources().await?;
        let Some(snap) = sources.newest.clone() else {
            return Err(fail(
                Reason::NotFound,
                format!("no {} in account {}", sources.what, self.account.account_id),
            ));
        };
        self.report.snapshot_arn = Some(snap.arn.clone());
        if snap.status != "available" {
            return Ok(Done::Waiting(
                Reason::SnapshotNotAvailable,
                format!(
                    "snapshot {} is {}; sharing waits for it",
                    snap.id, snap.status
                ),
            ));
        }
        let shareable = match self.shareable(&snap).await? {
            Ok(s) => s,
            Err(done) => return Ok(done),
        };
        let targets = self.targets();
        // Tags and the restore attribute are read-modify-written: one share at a time per snapshot.
        let _only_writer = self.engine.locks.lock(&shareable.arn).await;
        let shared = self
            .backend
            .shared_with(&self.account, &self.region, &shareable)
            .await?;
        let tags = self
            .backend
            .tags(&self.account, &self.region, &shareable.arn)
            .await?;
        let to_add: Vec<String> = targets
            .iter()
            .filter(|t| !shared.contains(t))
            .cloned()
            .collect();
        let ours_removed: Vec<String> = owned_accounts(&tags, &self.marker)
            .into_iter()
            .filter(|a| !targets.contains(a))
            .collect();
        if shared.len() + to_add.len() - ours_removed.len().min(shared.len()) > MAX_SHARED_ACCOUNTS
        {
            return Err(fail(
                Reason::ShareQuotaExceeded,
                format!(
                    "sharing {} with {} more account(s) would exceed AWS's limit of {MAX_SHARED_ACCOUNTS} (it is shared with {} already); nothing was changed",
                    shareable.id,
                    to_add.len(),
                    shared.len()
                ),
            ));
        }

        // Key access first: an account must be able to use the key once the snapshot is shared with it.
        let key = match (shareable.encrypted, &shareable.kms_key_id) {
            (true, Some(key)) => Some(
                self.backend
                    .key_info(&self.account, &self.region, key)
                    .await?,
            ),
            _ => None,
        };
        if let Some(key) = &key {
            if let Some(state) = &key.unusable {
                return Err(fail(
                    Reason::KeyUnusable,
                    format!("the snapshot's key {} is {state}", key.arn),
                ));
            }
            let removed_with_key: Vec<String> = ours_removed.clone();
            self.key_access(&key.arn, &targets, &removed_with_key)
                .await?;
        }

        // Tag before sharing, so a crash in between leaves an account recorded as ours, not lost.
        let mut new_tags = BTreeMap::new();
        for account in &targets {
            let owners = tags.get(&share_tag(account));
            let ours_already = owners.is_some_and(|o| o.split(' ').any(|m| m == self.marker));
            let xacct_shared = owners.is_some();
            if !ours_already && (to_add.contains(account) || xacct_shared) {
                new_tags.insert(
                    share_tag(account),
                    add_owner(owners.map(String::as_str), &self.marker),
                );
            }
        }
        let (release, untag, keep_tags) = self.release_plan(&tags, &ours_removed);
        new_tags.extend(keep_tags);
        if self.dry_run {
            self.plan_steps(&shareable, &to_add, &release);
        } else {
            self.backend
                .add_tags(&self.account, &self.region, &shareable.arn, &new_tags)
                .await?;
            self.backend
                .modify_sharing(&self.account, &self.region, &shareable, &to_add, &release)
                .await?;
            self.backend
                .remove_tags(&self.account, &self.region, &shareable.arn, &untag)
                .await?;
            self.plan_steps(&shareable, &to_add, &release);
        }

        for old in sources.all.iter().filter(|s| !sources.keep.contains(&s.id)) {
            self.release_snapshot(old).await?;
        }
        self.report.targets = targets
            .iter()
            .map(|a| ShareTargetStatus {
                account_id: a.clone(),
                snapshot_arn: Some(shareable.arn.clone()),
                key_access: match (&key, self.share().spec.kms.mode) {
                    (None, _) => "NotEncrypted".into(),
                    (Some(_), KmsMode::KeyPolicy) => "KeyPolicy".into(),
                    (Some(_), KmsMode::Grant) => "Grant".into(),
                },
            })
            .collect();
        Ok(Done::Finished)
    }

    fn plan_steps(&mut self, snap: &SnapshotInfo, added: &[String], removed: &[String]) {
        let verb = |done: &str, planned: &str| {
            if self.dry_run {
                planned.to_string()
            } else {
                done.to_string()
            }
        };
        if !added.is_empty() {
            let step = format!(
                "{} {} with {}",
                verb("shared", "share"),
                snap.id,
                added.join(", ")
            );
            self.report.steps.push(step);
        }
        if !removed.is_empty() {
            let step = format!(
                "{} {} from {} (shared by this share only)",
                verb("unshared", "unshare"),
                snap.id,
                removed.join(", ")
            );
            self.report.steps.push(step);
        }
    }

    /// For accounts this share no longer wants: which to unshare (no other xacct share wants them),
    /// which tags to delete, which tags to rewrite without this share.
    fn release_plan(
        &self,
        tags: &BTreeMap<String, String>,
        accounts: &[String],
    ) -> (Vec<String>, Vec<String>, BTreeMap<String, String>) {
        let (mut release, mut untag, mut rewrite) = (Vec::new(), Vec::new(), BTreeMap::new());
        for account in accounts {
            let key = share_tag(account);
            let others = remove_owner(
                tags.get(&key).map(String::as_str).unwrap_or_default(),
                &self.marker,
            );
            if others.is_empty() {
                release.push(account.clone());
                untag.push(key);
            } else {
                rewrite.insert(key, others);
            }
        }
        (release, untag, rewrite)
    }

    /// Unshares `snap` from every account this share alone shared it with.
    async fn release_snapshot(&mut self, snap: &SnapshotInfo) -> Result<(), Failure> {
        let _only_writer = self.engine.locks.lock(&snap.arn).await;
        let tags = self
            .backend
            .tags(&self.account, &self.region, &snap.arn)
            .await?;
        let ours = owned_accounts(&tags, &self.marker);
        if ours.is_empty() {
            return Ok(());
        }
        let shared = self
            .backend
            .shared_with(&self.account, &self.region, snap)
            .await?;
        let (release, untag, rewrite) = self.release_plan(&tags, &ours);
        let release: Vec<String> = release.into_iter().filter(|a| shared.contains(a)).collect();
        if !self.dry_run {
            self.backend
                .add_tags(&self.account, &self.region, &snap.arn, &rewrite)
                .await?;
            self.backend
                .modify_sharing(&self.account, &self.region, snap, &[], &release)
                .await?;
            self.backend
                .remove_tags(&self.account, &self.region, &snap.arn, &untag)
                .await?;
        }
        self.plan_steps(snap, &[], &release);
        Ok(())
    }

    /// Gives `targets` the key access RDS needs, and takes it from `removed`.
    async fn key_access(
        &mut self,
        key_arn: &str,
        targets: &BTreeSet<String>,
        removed: &[String],
    ) -> Result<(), Failure> {
        match self.share().spec.kms.mode {
            KmsMode::KeyPolicy => {
                let apply: Vec<GrantInput> =
                    targets.iter().map(|a| self.key_grant(key_arn, a)).collect();
                let revoke: Vec<GrantInput> =
                    removed.iter().map(|a| self.key_grant(key_arn, a)).collect();
                for (inputs, operation) in [(apply, Operation::Apply), (revoke, Operation::Delete)]
                {
                    if inputs.is_empty() {
                        continue;
                    }
                    let report = self
                        .engine
                        .run(self.accounts, &inputs, operation, self.dry_run)
                        .await;
                    if let Some(failed) = report
                        .grants
                        .iter()
                        .filter_map(|g| g.ready())
                        .find(|c| c.status == "False" && c.reason.is_failure())
                    {
                        return Err(Failure {
                            reason: failed.reason,
                            message: format!("key policy of {key_arn}: {}", failed.message),
                        });
                    }
                    for target in report.targets.into_iter().filter(|t| !t.changes.is_empty()) {
                        let verb = if self.dry_run { "change" } else { "changed" };
                        self.report.steps.push(format!(
                            "{verb} {} statement(s) in the key policy of {key_arn}",
                            target.changes.len()
                        ));
                        self.report.key_policies.push(target);
                    }
                }
            }
            KmsMode::Grant => {
                let partition = partition_for_region(&self.region);
                for account in targets {
                    let name = format!("{}-{account}", self.marker);
                    if self
                        .backend
                        .find_grant(&self.account, &self.region, key_arn, &name)
                        .await?
                        .is_none()
                    {
                        if !self.dry_run {
                            let grantee = format!("arn:{partition}:iam::{account}:root");
                            self.backend
                                .create_grant(&self.account, &self.region, key_arn, &name, &grantee)
                                .await?;
                        }
                        let verb = if self.dry_run { "create" } else { "created" };
                        self.report.steps.push(format!(
                            "{verb} KMS grant {name} on {key_arn} for {account}"
                        ));
                    }
                }
                for account in removed {
                    self.revoke_kms_grant(key_arn, account).await?;
                }
            }
        }
        Ok(())
    }

    async fn revoke_kms_grant(&mut self, key_arn: &str, account: &str) -> Result<(), Failure> {
        let name = format!("{}-{account}", self.marker);
        if let Some(id) = self
            .backend
            .find_grant(&self.account, &self.region, key_arn, &name)
            .await?
        {
            if !self.dry_run {
                self.backend
                    .revoke_grant(&self.account, &self.region, key_arn, &id)
                    .await?;
            }
            let verb = if self.dry_run { "revoke" } else { "revoked" };
            self.report
                .steps
                .push(format!("{verb} KMS grant {name} on {key_arn}"));
        }
        Ok(())
    }

    /// The synthetic grant that carries one target account's key policy statements (named by
    /// [`key_grant_name`]).
    fn key_grant(&self, key_arn: &str, account: &str) -> GrantInput {
        let share = self.share();
        let name = key_grant_name(share.metadata.name.as_deref().unwrap_or_default(), account);
        let spec = CrossAccountGrantSpec {
            resource: ResourceSpec {
                account: share.spec.source.account.clone(),
                kind: ResourceKind::KmsKey,
                name: key_arn.to_string(),
                region: Some(self.region.clone()),
                prefix: None,
            },
            grantee: GranteeSpec {
                account_id: Some(account.to_string()),
                account: None,
                principals: Vec::new(),
                organization: None,
            },
            access: vec![AccessPreset::EncryptDecrypt, AccessPreset::Grant],
            actions: Vec::new(),
            conditions: BTreeMap::new(),
            external_id: None,
            deletion_policy: DeletionPolicy::Delete,
            mode: Default::default(),
            grantee_side: None,
        };
        let mut grant = CrossAccountGrant::new(&name, spec);
        grant.metadata.namespace = share.metadata.namespace.clone();
        GrantInput::new(grant, self.input.origin.clone())
    }

    async fn delete(&mut self) -> Result<Done, Failure> {
        if self.share().spec.deletion_policy == DeletionPolicy::Retain {
            return Ok(Done::Retained);
        }
        self.unshare().await
    }

    /// Takes back everything this share gave: snapshot attributes and key access.
    async fn unshare(&mut self) -> Result<Done, Failure> {
        // Every snapshot and copy this share may have shared, whether or not its source still
        // exists; key access is revoked for every account this share wanted or recorded, on every
        // key involved, whatever the tags say (someone else may have shared a snapshot too).
        let sources = self.sources().await?;
        let targets = self.targets();
        let mut keys_done = BTreeSet::new();
        for candidate in &sources.all {
            let tags = self
                .backend
                .tags(&self.account, &self.region, &candidate.arn)
                .await?;
            let ours = owned_accounts(&tags, &self.marker);
            if let (true, Some(key)) = (candidate.encrypted, &candidate.kms_key_id) {
                let key = self
                    .backend
                    .key_info(&self.account, &self.region, key)
                    .await?;
                if keys_done.insert(key.arn.clone()) {
                    let revoke: Vec<String> = ours
                        .iter()
                        .chain(targets.iter())
                        .cloned()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    match self.share().spec.kms.mode {
                        KmsMode::KeyPolicy => {
                            self.key_access(&key.arn, &BTreeSet::new(), &revoke).await?
                        }
                        KmsMode::Grant => {
                            for account in &revoke {
                                self.revoke_kms_grant(&key.arn, account).await?;
                            }
                        }
                    }
                }
            }
            self.release_snapshot(candidate).await?;
        }
        Ok(Done::Finished)
    }
}

fn share_tag(account: &str) -> String {
    format!("{SHARE_TAG}{account}")
}

/// Accounts whose share tag names `marker`.
fn owned_accounts(tags: &BTreeMap<String, String>, marker: &str) -> Vec<String> {
    tags.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(SHARE_TAG)
                .filter(|_| v.split(' ').any(|m| m == marker))
                .map(str::to_string)
        })
        .collect()
}

fn add_owner(owners: Option<&str>, marker: &str) -> String {
    let mut set: BTreeSet<&str> = owners
        .unwrap_or_default()
        .split(' ')
        .filter(|m| !m.is_empty())
        .collect();
    set.insert(marker);
    set.into_iter().collect::<Vec<_>>().join(" ")
}

fn remove_owner(owners: &str, marker: &str) -> String {
    owners
        .split(' ')
        .filter(|m| !m.is_empty() && *m != marker)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The name of the synthetic grant that carries a share's key policy statements for one target
/// account. It holds a `:`, which no Kubernetes object name can, so it never meets a real grant's.
pub(super) fn key_grant_name(share: &str, account: &str) -> String {
    format!("SnapshotShare:{share}:{account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_identifiers_are_valid_rds_identifiers_and_stable() {
        let id = copy_identifier(
            "Xacct0123456789abcdef0123456789",
            "rds:orders-2026-11-28-08-15",
        );
        assert_eq!(
            id,
            copy_identifier(
                "Xacct0123456789abcdef0123456789",
                "rds:orders-2026-11-28-08-15"
            )
        );
        assert!(id.starts_with("xacct-"));
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert!(!id.contains("--") && !id.ends_with('-'), "{id}");
        assert!(copy_identifier("m", &"x".repeat(400)).len() <= 255);
        assert_ne!(copy_identifier("a", "s"), copy_identifier("b", "s"));
    }

    #[test]
    fn owners_are_added_and_removed_without_touching_others() {
        assert_eq!(add_owner(None, "A"), "A");
        assert_eq!(add_owner(Some("B"), "A"), "A B");
        assert_eq!(add_owner(Some("A B"), "A"), "A B");
        assert_eq!(remove_owner("A B", "A"), "B");
        assert_eq!(remove_owner("A", "A"), "");
        let tags = BTreeMap::from([
            (
                "xacct.dev/share/111111111111".to_string(),
                "A B".to_string(),
            ),
            ("xacct.dev/share/222222222222".to_string(), "B".to_string()),
            ("other".to_string(), "A".to_string()),
        ]);
        assert_eq!(owned_accounts(&tags, "A"), vec!["111111111111".to_string()]);
    }
}
