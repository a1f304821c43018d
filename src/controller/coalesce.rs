//! Converging the grants on one resource together. When a grant (mode Enforce) needs converging,
//! the engine runs once for it and its *peers*: the other grants on the same resource that may be
//! written now (finalizer held, not being deleted, Enforce, accounts Ready). One such run at a time
//! per resource; reconciles of other grants on it wait for the run instead of starting their own,
//! and find their result kept for them (for their generation, computed recently, with the same
//! accounts), which they use once, without calling AWS. N grants on one policy then cost about one
//! read (and one write when something changed) instead of N.
//!
//! A grant's first reconcile only adds the finalizer, so grants created together (or found
//! together when the controller starts) become peers one by one: a run waits for those of its
//! resource that are getting it, while finalizers are still being added ([`GATHER_QUIET`],
//! [`GATHER_MAX`]); the grants that wait meanwhile are woken by the run.
//!
//! At the resync, the grants of a resource come back together when their last checks were made
//! together: each one's next check is set one resync period after the run that checked it, not
//! after its own reconcile. A grant that joined later (created, or edited, at another time) is
//! brought into step: a converged grant that finds it was checked by a peer's run within the
//! current period takes that result (see [`usable`]) and waits for the resource's next run.
//!
//! The engine already converges every grant of a run on each policy in one read-modify-write, and
//! fails grants one by one where it can (a bad spec, a missing grantee role, an overflowing
//! policy). One failure it cannot pin on a grant: AWS refusing a whole document
//! (`PolicyRejected`, e.g. a principal that does not exist). A run in which that happened to a
//! policy shared by several of its grants sets the resource apart ([`ISOLATION`]): its grants are
//! converged one by one again, as before coalescing, so the grant at fault fails alone.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::conditions::{READY, find, is_ready};
use super::context::Context;
use super::grant::{GRANT_FINALIZER, input};
pub use super::index::ResourceKey;
use crate::api::{
    AwsAccount, CrossAccountGrant, GrantMode, GrantedTarget, GranteeSide, ResourceSpec,
};
use crate::engine::{GrantReport, Operation, Reason, Report};

/// The oldest a result kept for a peer may be when its reconcile uses it. A kept result stands in
/// for a read of AWS made when it was computed: drift made after that is seen at the next resync
/// instead of this one, so the age is bounded well below the resync period (see [`result_ttl`]).
/// The peers of a run come soon after it (they were waiting for it, or their resync falls in the
/// same few seconds), so a short bound loses little.
pub const MAX_RESULT_AGE: Duration = Duration::from_secs(30);

/// How long a kept result may be used whatever it says: half the resync period, at most
/// [`MAX_RESULT_AGE`]. Half the period, so that a result is never used at the resync after the one
/// it was computed for.
pub fn result_ttl(resync: Duration) -> Duration {
    (resync / 2).min(MAX_RESULT_AGE)
}

/// When a grant checked by a run that started `age` ago looks again: one resync period after that
/// run (so the grants of one resource stay in step), but not sooner than half a period from now
/// (a run slower than the period does not make its grants loop).
pub fn next_check(resync: Duration, age: Duration) -> Duration {
    resync.saturating_sub(age).max(resync / 2)
}

/// What a grant's reconcile knows of it, to judge a result kept for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// Its generation.
    pub generation: Option<i64>,
    /// The fingerprint of its accounts now ([`accounts_fingerprint`]).
    pub accounts: u64,
    /// Whether its status says Ready at this generation.
    pub converged: bool,
}

/// Whether a result kept for a grant may be used by its reconcile, `age` after the run started:
/// computed for its generation with the same accounts, and either younger than `ttl` (see
/// [`result_ttl`]), or, for a grant already Ready at this generation and a result that says
/// Ready, younger than the resync period: the grant was checked by a peer's run in the current
/// period, nothing to report had it run itself, and taking the result puts it in step with that
/// run (its next check follows the run's, [`next_check`]) instead of reading the policy again.
pub fn usable(
    kept: &Kept,
    current: &Current,
    age: Duration,
    ttl: Duration,
    resync: Duration,
) -> bool {
    if kept.retry || kept.generation != current.generation || kept.accounts != current.accounts {
        return false;
    }
    let ready = kept
        .result
        .report
        .ready()
        .is_some_and(|c| c.status == "True");
    age < ttl || (age < resync && current.converged && ready)
}

/// How long a resource's grants are converged one by one after AWS refused a document written for
/// several of them at once (the refusal may be one grant's fault). Long enough that the grant at
/// fault has failed alone (and is then left out of runs until its spec changes, see
/// [`standing`]); batching then resumes.
pub const ISOLATION: Duration = Duration::from_secs(600);

/// A run on a resource waits while grants on it are still getting their finalizer (each grant's
/// first reconcile only adds it, so grants created together, or found together at start-up, become
/// peers one by one), until no grant anywhere got it for this long (the controller adds them
/// across every resource at once: those of one resource may come a while apart). The first grant
/// to wait is re-queued to look again then, without holding a worker; the others wait to be woken
/// by the run, which keeps their results.
pub const GATHER_QUIET: Duration = Duration::from_secs(1);

/// The longest a run waits for arriving grants, from its first wait (see [`GATHER_QUIET`]). It
/// only applies while grants keep getting their finalizer somewhere (a grant that never gets it
/// changes nothing: the run waits [`GATHER_QUIET`]); long enough for a controller starting with
/// ten thousand grants to add most of their finalizers.
pub const GATHER_MAX: Duration = Duration::from_secs(30);

/// Waits for arriving peers, per resource.
#[derive(Debug, Clone)]
struct Gathering {
    /// The first wait.
    since: Instant,
    /// How many grants were arriving, on the resource and everywhere, when last looked at.
    arriving: (usize, usize),
    /// When those numbers last changed.
    changed: Instant,
    /// The grant that looks again until the run (the first to wait).
    poller: String,
    /// The other grants waiting: woken once the run has kept their results.
    waiting: Vec<ObjectRef<CrossAccountGrant>>,
}

/// Where woken grants are sent: the grant controller reconciles them (`reconcile_on`).
pub type Wake = futures::channel::mpsc::UnboundedSender<ObjectRef<CrossAccountGrant>>;

/// The key of `resource`, with its account's region from the cache.
pub fn resource_key(resource: &ResourceSpec, ctx: &Context) -> ResourceKey {
    let region = ctx
        .account(&resource.account)
        .and_then(|a| a.spec.region.clone());
    ResourceKey::new(resource, region.as_deref())
}

/// What one run found for one grant: what its reconcile needs.
#[derive(Debug, Clone)]
pub struct GrantResult {
    /// The engine's report of the grant.
    pub report: GrantReport,
    /// Its statement changes, in a few words (Sids and kinds).
    pub changes: String,
    /// When the run ended.
    pub at: Timestamp,
    /// When the run started: the grant's next check is one resync period later.
    pub started: Instant,
}

/// A result kept for a peer's reconcile.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The peer's generation the run saw.
    pub generation: Option<i64>,
    /// The fingerprint of the peer's accounts the run used ([`accounts_fingerprint`]).
    pub accounts: u64,
    /// The resource the peer named then.
    pub resource: ResourceSpec,
    /// The result.
    pub result: GrantResult,
    /// Where earlier runs, whose results this one replaced unused, wrote the peer's statements.
    pub earlier: Vec<GrantedTarget>,
    /// The result is not to be used: AWS refused a policy written for the peer and others, so it
    /// converges on its own (only the places the run wrote its statements to are kept).
    pub retry: bool,
}

impl Kept {
    /// The policies this run wrote the grant's statements to, as status records them.
    fn written(&self) -> Vec<GrantedTarget> {
        self.result
            .report
            .targets
            .iter()
            .map(|t| GrantedTarget {
                arn: t.arn.clone(),
                resource: self.resource.clone(),
                policy: Some(t.location.clone()),
                region: Some(t.region.clone()),
                sids: t.sids.clone(),
                last_applied: Some(self.result.at.to_string()),
                generation: self.generation,
            })
            .collect()
    }

    /// Every policy this run and the earlier ones wrote the grant's statements to.
    fn all_written(&self) -> Vec<GrantedTarget> {
        let mut all = self.written();
        add_places(&mut all, self.earlier.iter().cloned());
        all
    }
}

/// Adds to `places` those of `more` it does not have (the same policy in the same region).
fn add_places(places: &mut Vec<GrantedTarget>, more: impl IntoIterator<Item = GrantedTarget>) {
    for place in more {
        let same = |p: &GrantedTarget| {
            p.arn == place.arn && p.policy == place.policy && p.region == place.region
        };
        if !places.iter().any(same) {
            places.push(place);
        }
    }
}

/// What a reconcile finds kept for its grant.
#[derive(Debug)]
pub enum Taken {
    /// A result to use ([`usable`]), and where earlier runs whose results were never used wrote
    /// the grant's statements.
    Fresh(GrantResult, Vec<GrantedTarget>),
    /// A result that cannot be used (another generation, other accounts, too old). The runs may
    /// still have written the grant's statements: these are the places, so that they are revoked
    /// if the grant no longer wants them.
    Stale(Vec<GrantedTarget>),
    /// Nothing.
    Nothing,
}

/// The per-resource locks, the results kept for peers, and the resources set apart.
#[derive(Debug, Default)]
pub struct Coalescer {
    locks: Mutex<HashMap<ResourceKey, Arc<AsyncMutex<()>>>>,
    kept: Mutex<HashMap<String, Kept>>,
    isolated: Mutex<HashMap<ResourceKey, Instant>>,
    gathering: Mutex<HashMap<ResourceKey, Gathering>>,
    wake: Mutex<Option<Wake>>,
}

impl Coalescer {
    /// Waits for, then holds, the lock of `key` (one run per resource at a time) until the guard is
    /// dropped.
    pub async fn lock(&self, key: &ResourceKey) -> OwnedMutexGuard<()> {
        let lock = {
            // A poisoned map only means another task panicked while inserting; it is still usable.
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(key.clone()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Keeps `kept` for the reconcile of the grant `id`, in place of an older one (whose places
    /// are kept with it).
    pub fn keep(&self, id: String, mut kept: Kept) {
        let mut all = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(older) = all.remove(&id) {
            add_places(&mut kept.earlier, older.all_written());
        }
        all.insert(id, kept);
    }

    /// Takes what is kept for the grant `id` (it is used at most once): [`Taken::Fresh`] when it is
    /// [`usable`] at `now`.
    pub fn take(
        &self,
        id: &str,
        current: &Current,
        now: Instant,
        ttl: Duration,
        resync: Duration,
    ) -> Taken {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        match kept {
            None => Taken::Nothing,
            Some(k) => {
                let age = now.saturating_duration_since(k.result.started);
                if usable(&k, current, age, ttl, resync) {
                    Taken::Fresh(k.result, k.earlier)
                } else {
                    Taken::Stale(k.all_written())
                }
            }
        }
    }

    /// Drops what is kept for the grant `id`, returning the places a run wrote its statements to.
    pub fn discard(&self, id: &str) -> Vec<GrantedTarget> {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .map(|k| k.all_written())
            .unwrap_or_default()
    }

    /// The places a run wrote the grant `id`'s statements to, as kept for it (left kept).
    pub fn written(&self, id: &str) -> Vec<GrantedTarget> {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(Kept::all_written)
            .unwrap_or_default()
    }

    /// Drops what is kept for grants that no longer exist.
    pub fn retain(&self, live: &HashSet<String>) {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| live.contains(id));
    }

    /// How many results are kept.
    pub fn kept_len(&self) -> usize {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// How long the grant `id` (`object`), about to run on `key`, waits at `now` for the grants
    /// getting their finalizer (`arriving`: how many on the resource, how many in all; `None`: it
    /// runs now): until those numbers have not changed for [`GATHER_QUIET`], at most [`GATHER_MAX`]
    /// after the first wait since the last run. The first grant to wait looks again then; the
    /// others are woken by the run ([`Coalescer::gathered`]), and look again after [`GATHER_MAX`]
    /// if nothing wakes them.
    pub fn gather(
        &self,
        key: &ResourceKey,
        id: &str,
        object: ObjectRef<CrossAccountGrant>,
        arriving: (usize, usize),
        now: Instant,
    ) -> Option<Duration> {
        let mut gathering = self.gathering.lock().unwrap_or_else(|e| e.into_inner());
        let g = gathering.entry(key.clone()).or_insert_with(|| Gathering {
            since: now,
            arriving,
            changed: now,
            poller: id.to_string(),
            waiting: Vec::new(),
        });
        if g.arriving != arriving {
            g.arriving = arriving;
            g.changed = now;
        }
        let latest = g.since + GATHER_MAX;
        let until = (g.changed + GATHER_QUIET).min(latest);
        if now >= until {
            return None;
        }
        if g.poller == id {
            return Some(until - now);
        }
        if !g.waiting.contains(&object) {
            g.waiting.push(object);
        }
        Some(latest + GATHER_QUIET - now)
    }

    /// A run on `key` starts: the next one may wait for arriving peers again. Returns the grants
    /// waiting for this run, to [`Coalescer::wake`] once it has kept their results.
    pub fn gathered(&self, key: &ResourceKey) -> Vec<ObjectRef<CrossAccountGrant>> {
        self.gathering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
            .map(|g| g.waiting)
            .unwrap_or_default()
    }

    /// Sends woken grants to `wake` from now on (without it, they look again by themselves).
    pub fn wake_with(&self, wake: Wake) {
        *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(wake);
    }

    /// Wakes `grants` (they are reconciled again soon).
    pub fn wake(&self, grants: Vec<ObjectRef<CrossAccountGrant>>) {
        if let Some(wake) = self.wake.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            for grant in grants {
                // Only fails when the controller has stopped.
                let _ = wake.unbounded_send(grant);
            }
        }
    }

    /// Converges `key`'s grants one by one until `until`.
    pub fn isolate(&self, key: &ResourceKey, until: Instant) {
        self.isolated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), until);
    }

    /// Whether `key`'s grants are converged one by one at `now`.
    pub fn is_isolated(&self, key: &ResourceKey, now: Instant) -> bool {
        let mut isolated = self.isolated.lock().unwrap_or_else(|e| e.into_inner());
        match isolated.get(key) {
            Some(until) if now < *until => true,
            Some(_) => {
                isolated.remove(key);
                false
            }
            None => false,
        }
    }
}

/// How a grant's kept result is found: namespace, name and uid (a grant deleted and created again
/// under the same name is another grant).
pub fn result_id(grant: &CrossAccountGrant) -> String {
    format!(
        "{}/{}/{}",
        grant.namespace().unwrap_or_default(),
        grant.name_any(),
        grant.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// The AwsAccounts a grant's run depends on: the resource's, and the grantee's when named.
fn account_names(grant: &CrossAccountGrant) -> impl Iterator<Item = &str> {
    std::iter::once(grant.spec.resource.account.as_str())
        .chain(grant.spec.grantee.account.as_deref())
}

/// A fingerprint of what the engine sees of some accounts: each one's uid and spec, and the
/// external id read from its Secret (hashed in memory, never shown). A result computed with other
/// accounts (an account edited, recreated, or its Secret changed) is not used.
pub fn fingerprint<'a>(
    accounts: impl IntoIterator<Item = (&'a str, Option<&'a AwsAccount>, Option<&'a str>)>,
) -> u64 {
    let mut hasher = DefaultHasher::new();
    for (name, account, external_id) in accounts {
        name.hash(&mut hasher);
        account
            .map(|a| {
                (
                    a.metadata.uid.as_deref(),
                    serde_json::to_string(&a.spec).unwrap_or_default(),
                )
            })
            .hash(&mut hasher);
        external_id.hash(&mut hasher);
    }
    hasher.finish()
}

/// The fingerprint of `grant`'s accounts as the controller's caches have them now.
pub fn accounts_fingerprint(grant: &CrossAccountGrant, ctx: &Context) -> u64 {
    let external_ids = ctx.external_ids.read().unwrap_or_else(|e| e.into_inner());
    let accounts: Vec<(&str, Option<Arc<AwsAccount>>)> = account_names(grant)
        .map(|name| (name, ctx.account(name)))
        .collect();
    fingerprint(accounts.iter().map(|(name, a)| {
        (
            *name,
            a.as_deref(),
            external_ids.get(*name).map(String::as_str),
        )
    }))
}

/// Where a grant stands for another grant's run on its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It may be converged in that run.
    Peer,
    /// It would be a peer but for the finalizer, which its first reconcile is adding.
    Arriving,
    /// It is converged on its own (or not at all).
    Apart,
}

/// Where `candidate` stands for another grant's run now. A peer holds the finalizer (a grant
/// without it could be deleted without its statements being revoked), is not being deleted, is in
/// mode Enforce (Observe grants are dry runs, each on its own), the accounts it writes in are Ready
/// (`account_ready`; the grantee's only with `granteeSide: Manage`), the checks its own reconcile
/// makes, and AWS did not refuse a policy with its statements at its current generation (it
/// retries on its own; see [`may_be_one_grants_fault`]).
pub fn standing(candidate: &CrossAccountGrant, account_ready: impl Fn(&str) -> bool) -> Standing {
    let meta = &candidate.metadata;
    let finalized = has_finalizer(candidate);
    let spec = &candidate.spec;
    let grantee_ready = match spec.grantee.account.as_deref() {
        Some(account) if spec.effective_grantee_side() == GranteeSide::Manage => {
            account_ready(account)
        }
        _ => true,
    };
    let eligible = meta.deletion_timestamp.is_none()
        && spec.mode == GrantMode::Enforce
        && account_ready(&spec.resource.account)
        && grantee_ready
        && !refused(candidate);
    match (eligible, finalized) {
        (true, true) => Standing::Peer,
        (true, false) => Standing::Arriving,
        (false, _) => Standing::Apart,
    }
}

/// Whether `grant` does not hold the finalizer yet (and is not being deleted): its first reconcile
/// is adding it.
fn getting_finalizer(grant: &CrossAccountGrant) -> bool {
    grant.metadata.deletion_timestamp.is_none() && !has_finalizer(grant)
}

fn has_finalizer(grant: &CrossAccountGrant) -> bool {
    grant
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == GRANT_FINALIZER))
}

/// `grant`'s peers among `grants` (the grants other than it on the resource `key` that are
/// [`Standing::Peer`]; `account_region` is the default region of the resource's account), and how
/// many more are [`Standing::Arriving`].
pub fn peers<'a>(
    grant: &CrossAccountGrant,
    key: &ResourceKey,
    account_region: Option<&str>,
    grants: &'a [Arc<CrossAccountGrant>],
    account_ready: impl Fn(&str) -> bool,
) -> (Vec<&'a Arc<CrossAccountGrant>>, usize) {
    let id = result_id(grant);
    let mut peers = Vec::new();
    let mut arriving = 0;
    for g in grants {
        let r = &g.spec.resource;
        // Cheap comparisons first: most grants are on other resources.
        if r.account != key.account
            || r.kind != key.kind
            || r.name != key.name
            || ResourceKey::new(r, account_region) != *key
            || result_id(g) == id
        {
            continue;
        }
        match standing(g, &account_ready) {
            Standing::Peer => peers.push(g),
            Standing::Arriving => arriving += 1,
            Standing::Apart => {}
        }
    }
    (peers, arriving)
}

/// Whether AWS refused a policy with `grant`'s statements at its current generation, as its status
/// says ([`may_be_one_grants_fault`]): it runs on its own, and in no other grant's run, until its
/// spec changes.
pub fn refused(grant: &CrossAccountGrant) -> bool {
    grant.status.as_ref().is_some_and(|s| {
        s.observed_generation == grant.metadata.generation
            && find(&s.conditions, READY).is_some_and(|c| {
                c.status == "False"
                    && Reason::parse(&c.reason).is_some_and(Reason::may_be_one_grants_fault)
            })
    })
}

/// Whether a failed write (its reason, and whether it is transient) may be the fault of one
/// grant's statements in the document (AWS refused the document), rather than of the policy or
/// the account (access denied, throttling).
pub fn may_be_one_grants_fault(reason: Reason, transient: bool) -> bool {
    !transient && reason.may_be_one_grants_fault()
}

/// Grants (`namespace/name`) on a policy that AWS refused to write for a reason one of them may
/// have caused, where the document held several grants of the run.
pub fn refused_together(report: &Report) -> BTreeSet<String> {
    report
        .targets
        .iter()
        .filter(|t| t.grants.len() > 1 && t.action != "none" && !t.done)
        .filter(|t| {
            t.error
                .as_ref()
                .is_some_and(|e| may_be_one_grants_fault(e.reason, e.transient))
        })
        .flat_map(|t| t.grants.iter().cloned())
        .collect()
}

/// What changed for `grant` in `report`, in a few words: each policy it changed, once, with its
/// Sids there by kind of change (`arn (added A, B; removed C)`).
pub fn changes_text(report: &Report, grant: &GrantReport) -> String {
    let policies: Vec<String> = report
        .targets
        .iter()
        .filter_map(|t| {
            let mut by_kind: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            for c in t.changes.iter().filter(|c| c.grant == grant.name) {
                let sids = by_kind
                    .entry(format!("{:?}", c.change).to_lowercase())
                    .or_default();
                if !sids.contains(&c.sid.as_str()) {
                    sids.push(&c.sid);
                }
            }
            (!by_kind.is_empty()).then(|| {
                let kinds: Vec<String> = by_kind
                    .iter()
                    .map(|(kind, sids)| format!("{kind} {}", sids.join(", ")))
                    .collect();
                format!("{} ({})", t.arn, kinds.join("; "))
            })
        })
        .collect();
    if policies.is_empty() {
        "no statement changes".into()
    } else {
        policies.join(", ")
    }
}

/// Each grant's result in `report` (a run that started at `started` and ended at `at`), in input
/// order.
fn per_grant(report: &Report, started: Instant, at: Timestamp) -> Vec<GrantResult> {
    report
        .grants
        .iter()
        .map(|g| GrantResult {
            report: g.clone(),
            changes: changes_text(report, g),
            at,
            started,
        })
        .collect()
}

/// What converging a grant came to.
#[derive(Debug)]
pub enum Converged {
    /// Its result (`None` if the engine gave none), and the places an earlier run that included it
    /// wrote its statements to that its status may not record.
    Done(Option<Box<GrantResult>>, Vec<GrantedTarget>),
    /// Grants on its resource are getting their finalizer: it looks again after this, to be
    /// converged with them ([`GATHER_QUIET`]).
    Wait(Duration),
}

/// Converges `grant`. Enforce: with its peers, or by taking the result a peer's run kept for it;
/// Observe: a dry run of its own.
pub async fn converge(grant: &CrossAccountGrant, ctx: &Context) -> Converged {
    let id = result_id(grant);
    if grant.spec.mode == GrantMode::Observe {
        let written = ctx.coalescer.discard(&id);
        let started = Instant::now();
        let report = ctx
            .engine
            .run(
                &ctx.account_directory(),
                &[input(grant, ctx)],
                Operation::Apply,
                true,
            )
            .await;
        let at = ctx.now();
        return Converged::Done(
            per_grant(&report, started, at)
                .into_iter()
                .next()
                .map(Box::new),
            written,
        );
    }
    let key = resource_key(&grant.spec.resource, ctx);
    let _one_run_per_resource = ctx.coalescer.lock(&key).await;
    let resync = ctx.settings.resync;
    let current = Current {
        generation: grant.metadata.generation,
        accounts: accounts_fingerprint(grant, ctx),
        converged: grant.status.as_ref().is_some_and(|s| {
            s.observed_generation == grant.metadata.generation && is_ready(&s.conditions)
        }),
    };
    let taken = ctx
        .coalescer
        .take(&id, &current, Instant::now(), result_ttl(resync), resync);
    let written = match taken {
        Taken::Fresh(result, earlier) => {
            tracing::debug!(grant = %id, "using the result of a run on the same resource");
            return Converged::Done(Some(Box::new(result)), earlier);
        }
        Taken::Stale(written) => written,
        Taken::Nothing => Vec::new(),
    };

    // The grants on the resource, from the index (not a scan of every grant).
    let on_resource = ctx.grants_on(&key);
    let (peers, arriving) = if refused(grant) || ctx.coalescer.is_isolated(&key, Instant::now()) {
        (Vec::new(), 0)
    } else {
        let region = ctx
            .account(&key.account)
            .and_then(|a| a.spec.region.clone());
        let ready = |name: &str| ctx.account_not_ready(name).is_none();
        peers(grant, &key, region.as_deref(), &on_resource, ready)
    };
    // (A grant with a stale result was in a run before: it does not wait, nor lose those places.)
    if arriving > 0 && written.is_empty() {
        let all = ctx.grants.state();
        let everywhere = all.iter().filter(|g| getting_finalizer(g)).count();
        let object = ObjectRef::from_obj(grant);
        if let Some(wait) =
            ctx.coalescer
                .gather(&key, &id, object, (arriving, everywhere), Instant::now())
        {
            tracing::debug!(grant = %id, arriving, "waiting for grants on the same resource getting their finalizer");
            return Converged::Wait(wait);
        }
    }
    let waiting = ctx.coalescer.gathered(&key);
    // Fingerprints before the directory: an account changing in between makes them differ from
    // what the peers see later, so the results are not used (never the other way round).
    let fingerprints: Vec<u64> = peers.iter().map(|p| accounts_fingerprint(p, ctx)).collect();
    let mut inputs = Vec::with_capacity(1 + peers.len());
    inputs.push(input(grant, ctx));
    inputs.extend(peers.iter().map(|p| input(p, ctx)));
    let directory = ctx.account_directory();
    let started = Instant::now();
    let report = ctx
        .engine
        .run(&directory, &inputs, Operation::Apply, false)
        .await;
    let at = ctx.now();
    let refused = if inputs.len() > 1 {
        refused_together(&report)
    } else {
        BTreeSet::new()
    };
    if !refused.is_empty() {
        tracing::warn!(resource = ?key, grants = refused.len(), "AWS refused a policy written for several grants at once; converging them one by one for a while");
        ctx.coalescer.isolate(&key, Instant::now() + ISOLATION);
    }
    let mut results = per_grant(&report, started, at).into_iter();
    let mut mine = results.next();
    for ((peer, result), accounts) in peers.iter().zip(results).zip(fingerprints) {
        // A peer refused with others converges on its own instead.
        let retry = refused.contains(&result.report.name);
        ctx.coalescer.keep(
            result_id(peer),
            Kept {
                generation: peer.metadata.generation,
                accounts,
                resource: peer.spec.resource.clone(),
                result,
                earlier: Vec::new(),
                retry,
            },
        );
    }
    ctx.coalescer.wake(waiting);
    if !peers.is_empty() {
        let live: HashSet<String> = ctx.grants.state().iter().map(|g| result_id(g)).collect();
        ctx.coalescer.retain(&live);
    }
    if mine
        .as_ref()
        .is_some_and(|m| refused.contains(&m.report.name))
    {
        // Not this grant's fault, perhaps: alone, it is.
        let started = Instant::now();
        let report = ctx
            .engine
            .run(&directory, &[input(grant, ctx)], Operation::Apply, false)
            .await;
        mine = per_grant(&report, started, ctx.now()).into_iter().next();
    }
    Converged::Done(mine.map(Box::new), written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ResourceKind;
    use crate::aws::{AwsError, AwsErrorKind};
    use crate::engine::{
        ChangeReport, ConditionReport, DEFAULT_REGION, GrantError, PlannedTarget, TargetReport,
    };
    use serde_json::json;

    fn grant(name: &str, bucket: &str, extra: serde_json::Value) -> CrossAccountGrant {
        let mut value = json!({
            "apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
            "metadata": {"name": name, "namespace": "batch", "uid": format!("uid-{name}"), "generation": 1,
                         "finalizers": [GRANT_FINALIZER]},
            "spec": {"resource": {"account": "data-prod", "kind": "S3Bucket", "name": bucket},
                     "grantee": {"accountId": "111111111111", "principals": ["role/R"]}, "access": ["read"]}
        });
        merge(&mut value, extra);
        serde_json::from_value(value).expect("a grant")
    }

    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (into, from) => *into = from,
        }
    }

    fn key(bucket: &str) -> ResourceKey {
        ResourceKey {
            account: "data-prod".into(),
            kind: ResourceKind::S3Bucket,
            name: bucket.into(),
            region: "eu-west-1".into(),
        }
    }

    fn names(peers: &[&Arc<CrossAccountGrant>]) -> Vec<String> {
        peers.iter().map(|g| g.name_any()).collect()
    }

    #[test]
    fn the_key_takes_the_grants_region_then_the_accounts_then_the_default() {
        let g = grant("a", "lake", json!({}));
        assert_eq!(
            ResourceKey::new(&g.spec.resource, Some("eu-west-1")),
            key("lake")
        );
        assert_eq!(
            ResourceKey::new(&g.spec.resource, None).region,
            DEFAULT_REGION
        );
        let g = grant(
            "a",
            "lake",
            json!({"spec": {"resource": {"region": "ap-south-1"}}}),
        );
        assert_eq!(
            ResourceKey::new(&g.spec.resource, Some("eu-west-1")).region,
            "ap-south-1"
        );
        // A key named by ARN is in the ARN's region, whatever the account's.
        let g = grant(
            "a",
            "arn:aws:kms:us-west-2:222222222222:key/1234abcd",
            json!({"spec": {"resource": {"kind": "KmsKey"}}}),
        );
        assert_eq!(
            ResourceKey::new(&g.spec.resource, Some("eu-west-1")).region,
            "us-west-2"
        );
    }

    #[test]
    fn peers_are_the_eligible_grants_on_the_same_resource() {
        let me = grant("me", "lake", json!({}));
        let all: Vec<Arc<CrossAccountGrant>> = [
            me.clone(),
            grant("peer", "lake", json!({})),
            grant("other-bucket", "pond", json!({})),
            grant(
                "other-region",
                "lake",
                json!({"spec": {"resource": {"region": "us-west-2"}}}),
            ),
            grant(
                "same-region-named",
                "lake",
                json!({"spec": {"resource": {"region": "eu-west-1"}}}),
            ),
            grant(
                "other-kind",
                "lake",
                json!({"spec": {"resource": {"kind": "EcrRepository"}, "access": ["pull"]}}),
            ),
            grant("no-finalizer", "lake", json!({"metadata": {"finalizers": []}})),
            grant(
                "other-finalizer",
                "lake",
                json!({"metadata": {"finalizers": ["example.com/x"]}}),
            ),
            grant(
                "deleting",
                "lake",
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
            ),
            grant("observing", "lake", json!({"spec": {"mode": "Observe"}})),
            grant(
                "grantee-not-ready",
                "lake",
                json!({"spec": {"grantee": {"accountId": null, "account": "dev-down"}}}),
            ),
            grant(
                "grantee-side-off",
                "lake",
                json!({"spec": {"grantee": {"accountId": null, "account": "dev-down"}, "granteeSide": "None"}}),
            ),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let ready = |name: &str| name != "dev-down";
        let (found, arriving) = peers(&me, &key("lake"), Some("eu-west-1"), &all, ready);
        assert_eq!(
            names(&found),
            ["peer", "same-region-named", "grantee-side-off"]
        );
        assert_eq!(
            arriving, 2,
            "no-finalizer and other-finalizer are getting theirs"
        );
        // The resource's account not Ready: nobody is a peer.
        let (found, arriving) = peers(&me, &key("lake"), Some("eu-west-1"), &all, |name: &str| {
            name != "data-prod"
        });
        assert!(found.is_empty(), "{:?}", names(&found));
        assert_eq!(arriving, 0);
    }

    #[test]
    fn a_grant_aws_refused_at_its_generation_is_not_a_peer_until_its_spec_changes() {
        let refused = |observed: i64, reason: &str, status: &str| {
            grant(
                "p",
                "lake",
                json!({"status": {"observedGeneration": observed, "conditions": [{"type": "Ready", "status": status,
                       "reason": reason, "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
            )
        };
        let ready = |_: &str| true;
        let peer = |g: &CrossAccountGrant| standing(g, ready) == Standing::Peer;
        assert!(!peer(&refused(1, "PolicyRejected", "False")));
        assert!(peer(&refused(0, "PolicyRejected", "False")));
        assert!(peer(&refused(1, "Throttled", "False")));
        assert!(peer(&refused(1, "NotFound", "False")));
        assert!(peer(&refused(1, "Applied", "True")));
    }

    fn result(name: &str, changes: usize, ready: &'static str, started: Instant) -> GrantResult {
        GrantResult {
            report: GrantReport {
                name: format!("batch/{name}"),
                origin: String::new(),
                targets: vec![PlannedTarget {
                    arn: "arn:aws:s3:::lake".into(),
                    location: crate::api::PolicyLocation {
                        account: "data-prod".into(),
                        kind: crate::api::PolicyKind::S3BucketPolicy,
                        name: "lake".into(),
                    },
                    region: "us-east-1".into(),
                    sids: vec!["XacctA".into()],
                }],
                role_arn: None,
                changes,
                conditions: vec![ConditionReport {
                    type_: "Ready",
                    status: ready,
                    reason: if ready == "True" {
                        Reason::Applied
                    } else {
                        Reason::Throttled
                    },
                    message: String::new(),
                }],
            },
            changes: "added XacctA".into(),
            at: Timestamp::from_second(1_800_000_000).expect("a time"),
            started,
        }
    }

    fn kept(generation: i64, accounts: u64, started: Instant) -> Kept {
        kept_saying(generation, accounts, started, "True")
    }

    fn kept_saying(generation: i64, accounts: u64, started: Instant, ready: &'static str) -> Kept {
        Kept {
            generation: Some(generation),
            accounts,
            resource: grant("p", "lake", json!({})).spec.resource,
            result: result("p", 2, ready, started),
            earlier: Vec::new(),
            retry: false,
        }
    }

    const TTL: Duration = Duration::from_secs(10);
    const RESYNC: Duration = Duration::from_secs(300);

    fn current(generation: i64, accounts: u64, converged: bool) -> Current {
        Current {
            generation: Some(generation),
            accounts,
            converged,
        }
    }

    #[test]
    fn a_kept_result_is_used_once_for_its_generation_and_accounts_while_fresh() {
        let c = Coalescer::default();
        let t0 = Instant::now();
        c.keep("p".into(), kept(1, 7, t0));
        let now = t0 + Duration::from_secs(9);
        match c.take("p", &current(1, 7, false), now, TTL, RESYNC) {
            Taken::Fresh(r, earlier) => {
                assert!(earlier.is_empty());
                assert_eq!((r.report.changes, r.changes.as_str()), (2, "added XacctA"))
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                c.take("p", &current(1, 7, false), now, TTL, RESYNC),
                Taken::Nothing
            ),
            "used once"
        );
        assert!(matches!(
            c.take("other", &current(1, 7, false), now, TTL, RESYNC),
            Taken::Nothing
        ));
    }

    #[test]
    fn a_kept_result_of_another_generation_other_accounts_or_too_old_is_stale_with_its_places() {
        let t0 = Instant::now();
        let cases = [
            (current(2, 7, true), t0, "another generation"),
            (
                Current {
                    generation: None,
                    ..current(1, 7, true)
                },
                t0,
                "no generation",
            ),
            (current(1, 8, true), t0, "other accounts"),
            (
                current(1, 7, false),
                t0 + TTL,
                "too old for a grant not converged",
            ),
            (
                current(1, 7, true),
                t0 + RESYNC,
                "older than the resync period",
            ),
        ];
        for (current, now, why) in cases {
            let c = Coalescer::default();
            c.keep("p".into(), kept(1, 7, t0));
            match c.take("p", &current, now, TTL, RESYNC) {
                Taken::Stale(places) => {
                    assert_eq!(places.len(), 1, "{why}");
                    assert_eq!(places[0].arn, "arn:aws:s3:::lake");
                    assert_eq!(places[0].resource.name, "lake");
                    assert_eq!(
                        places[0].policy.as_ref().map(|p| p.name.as_str()),
                        Some("lake")
                    );
                    assert_eq!(places[0].sids, ["XacctA"]);
                }
                other => panic!("{why}: {other:?}"),
            }
            assert_eq!(c.kept_len(), 0, "{why}: taken even when stale");
        }
    }

    #[test]
    fn a_converged_grant_checked_by_a_peers_run_in_this_period_takes_its_result() {
        let t0 = Instant::now();
        let age = Duration::from_secs(200); // past the TTL, within the period
        let ready = kept(1, 7, t0);
        assert!(usable(&ready, &current(1, 7, true), age, TTL, RESYNC));
        // Not for a grant whose status is not (yet) Ready at this generation: it reports afresh.
        assert!(!usable(&ready, &current(1, 7, false), age, TTL, RESYNC));
        // Nor a failure: it is retried.
        let failed = kept_saying(1, 7, t0, "False");
        assert!(!usable(&failed, &current(1, 7, true), age, TTL, RESYNC));
        assert!(usable(&failed, &current(1, 7, true), TTL / 2, TTL, RESYNC));
        // Nor one whose policy AWS refused with other grants' statements: it runs on its own.
        let refused = Kept {
            retry: true,
            ..kept(1, 7, t0)
        };
        assert!(!usable(
            &refused,
            &current(1, 7, false),
            Duration::ZERO,
            TTL,
            RESYNC
        ));
        // Never another generation's.
        assert!(!usable(
            &ready,
            &current(2, 7, true),
            Duration::ZERO,
            TTL,
            RESYNC
        ));
    }

    #[test]
    fn the_next_check_follows_the_run_that_checked_the_grant() {
        assert_eq!(
            next_check(RESYNC, Duration::from_secs(1)),
            Duration::from_secs(299)
        );
        assert_eq!(
            next_check(RESYNC, Duration::from_secs(100)),
            Duration::from_secs(200)
        );
        assert_eq!(next_check(RESYNC, Duration::from_secs(250)), RESYNC / 2);
        assert_eq!(next_check(RESYNC, Duration::from_secs(900)), RESYNC / 2);
    }

    #[test]
    fn a_result_replaced_unused_passes_its_places_on() {
        let c = Coalescer::default();
        let t0 = Instant::now();
        let mut old = kept(1, 7, t0);
        old.result.report.targets[0].arn = "arn:aws:iam::111111111111:role/Old".into();
        old.result.report.targets[0].location.name = "Old".into();
        c.keep("p".into(), old);
        // A later run (the grant's spec changed: generation 2) keeps its own result.
        c.keep("p".into(), kept(2, 7, t0));
        assert_eq!(c.written("p").len(), 2, "both runs' places");
        match c.take("p", &current(2, 7, false), t0, TTL, RESYNC) {
            Taken::Fresh(r, earlier) => {
                assert_eq!(r.report.targets[0].arn, "arn:aws:s3:::lake");
                let arns: Vec<&str> = earlier.iter().map(|t| t.arn.as_str()).collect();
                assert_eq!(arns, ["arn:aws:iam::111111111111:role/Old"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn discard_and_retain_drop_kept_results() {
        let c = Coalescer::default();
        let t0 = Instant::now();
        c.keep("a".into(), kept(1, 7, t0));
        c.keep("b".into(), kept(1, 7, t0));
        assert_eq!(c.written("a").len(), 1);
        assert_eq!(c.written("a").len(), 1, "written leaves it kept");
        assert_eq!(c.discard("a").len(), 1);
        assert!(c.discard("a").is_empty());
        c.retain(&HashSet::from(["c".to_string()]));
        assert_eq!(c.kept_len(), 0);
    }

    #[test]
    fn the_ttl_is_half_the_resync_at_most_thirty_seconds() {
        assert_eq!(result_ttl(Duration::from_secs(4)), Duration::from_secs(2));
        assert_eq!(result_ttl(Duration::from_secs(300)), MAX_RESULT_AGE);
    }

    #[test]
    fn result_ids_tell_a_recreated_grant_apart() {
        let a = grant("a", "lake", json!({}));
        let again = grant("a", "lake", json!({"metadata": {"uid": "uid-a2"}}));
        assert_ne!(result_id(&a), result_id(&again));
        assert_eq!(result_id(&a), "batch/a/uid-a");
    }

    #[test]
    fn fingerprints_change_with_the_accounts_spec_uid_and_external_id() {
        let account = |uid: &str, region: &str| -> AwsAccount {
            serde_json::from_value(
                json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount",
                "metadata": {"name": "data-prod", "uid": uid},
                "spec": {"accountId": "222222222222", "region": region}}),
            )
            .expect("an account")
        };
        let a = account("u1", "us-east-1");
        let base = fingerprint([("data-prod", Some(&a), None)]);
        assert_eq!(base, fingerprint([("data-prod", Some(&a), None)]));
        let b = account("u1", "eu-west-1");
        assert_ne!(base, fingerprint([("data-prod", Some(&b), None)]));
        let c = account("u2", "us-east-1");
        assert_ne!(base, fingerprint([("data-prod", Some(&c), None)]));
        assert_ne!(base, fingerprint([("data-prod", Some(&a), Some("x"))]));
        assert_ne!(base, fingerprint([("data-prod", None, None)]));
    }

    #[tokio::test]
    async fn one_run_per_resource_at_a_time() {
        let c = Arc::new(Coalescer::default());
        let held = c.lock(&key("lake")).await;
        let other = tokio::time::timeout(Duration::from_millis(50), c.lock(&key("pond"))).await;
        assert!(other.is_ok(), "another resource is free");
        let same = tokio::time::timeout(Duration::from_millis(50), c.lock(&key("lake"))).await;
        assert!(same.is_err(), "the same resource waits");
        drop(held);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), c.lock(&key("lake")))
                .await
                .is_ok()
        );
    }

    #[test]
    fn a_run_waits_for_arriving_peers_while_they_keep_arriving_up_to_the_maximum() {
        let c = Coalescer::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let lake = key("lake");
        let g = |name: &str| {
            let grant = grant(name, "lake", json!({}));
            (result_id(&grant), ObjectRef::from_obj(&grant))
        };
        let (a, a_ref) = g("a");
        let (b, b_ref) = g("b");
        let gather = |id: &str, r: &ObjectRef<CrossAccountGrant>, arriving, now| {
            c.gather(&lake, id, r.clone(), arriving, now)
        };
        assert_eq!(gather(&a, &a_ref, (5, 50), t0), Some(GATHER_QUIET));
        assert_eq!(
            gather(&a, &a_ref, (5, 50), t0 + ms(400)),
            Some(GATHER_QUIET - ms(400)),
            "no progress: the quiet time runs from the last change"
        );
        assert_eq!(
            gather(&b, &b_ref, (5, 40), t0 + ms(900)),
            Some(GATHER_MAX + GATHER_QUIET - ms(900)),
            "another grant waits to be woken (finalizers were added elsewhere)"
        );
        assert_eq!(
            gather(&a, &a_ref, (5, 40), t0 + ms(1200)),
            Some(ms(700)),
            "the first grant looks again a second after the last change"
        );
        assert_eq!(
            gather(&a, &a_ref, (3, 38), t0 + ms(1500)),
            Some(GATHER_QUIET),
            "two more arrived here"
        );
        assert_eq!(
            gather(&a, &a_ref, (3, 38), t0 + ms(2500)),
            None,
            "quiet for a second"
        );
        assert_eq!(
            c.gather(&key("pond"), &b, b_ref.clone(), (3, 38), t0 + ms(2500)),
            Some(GATHER_QUIET),
            "per resource"
        );
        assert_eq!(c.gathered(&lake), vec![b_ref.clone()], "the run wakes b");
        assert!(c.gathered(&lake).is_empty());
        // Grants arriving without pause: at most GATHER_MAX from the first wait.
        let t1 = t0 + ms(5000);
        let mut now = t1;
        let mut arriving = 1000;
        while gather(&a, &a_ref, (1, arriving), now).is_some() {
            now += ms(500);
            arriving -= 1;
        }
        assert_eq!(now - t1, GATHER_MAX);
    }

    #[test]
    fn woken_grants_are_sent_to_the_controller() {
        let c = Coalescer::default();
        let grant = grant("a", "lake", json!({}));
        c.wake(vec![ObjectRef::from_obj(&grant)]); // nowhere to send: nothing happens
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        c.wake_with(tx);
        c.wake(vec![ObjectRef::from_obj(&grant)]);
        assert_eq!(rx.try_recv().ok(), Some(ObjectRef::from_obj(&grant)));
    }

    #[test]
    fn isolation_lasts_until_its_end() {
        let c = Coalescer::default();
        let t0 = Instant::now();
        assert!(!c.is_isolated(&key("lake"), t0));
        c.isolate(&key("lake"), t0 + Duration::from_secs(5));
        assert!(c.is_isolated(&key("lake"), t0 + Duration::from_secs(4)));
        assert!(!c.is_isolated(&key("pond"), t0 + Duration::from_secs(4)));
        assert!(!c.is_isolated(&key("lake"), t0 + Duration::from_secs(5)));
    }

    fn target(
        grants: &[&str],
        action: &'static str,
        done: bool,
        error: Option<AwsErrorKind>,
    ) -> TargetReport {
        TargetReport {
            arn: "arn:aws:s3:::lake".into(),
            account: "data-prod".into(),
            account_id: "222222222222".into(),
            kind: "S3BucketPolicy".into(),
            action,
            done,
            grants: grants.iter().map(|g| format!("batch/{g}")).collect(),
            changes: vec![ChangeReport {
                sid: "XacctA".into(),
                grant: "batch/a".into(),
                change: crate::policy::ChangeKind::Added,
                before: None,
                after: None,
            }],
            size: None,
            notes: Vec::new(),
            error: error.map(|kind| {
                (&GrantError::Aws(AwsError::new(
                    kind,
                    "s3:PutBucketPolicy",
                    "222222222222",
                    "no",
                )))
                    .into()
            }),
        }
    }

    fn report(targets: Vec<TargetReport>) -> Report {
        Report {
            operation: "apply",
            dry_run: false,
            targets,
            grants: Vec::new(),
        }
    }

    #[test]
    fn only_a_refused_write_shared_by_several_grants_sets_them_apart() {
        let refused = |t| refused_together(&report(vec![t]));
        assert_eq!(
            refused(target(
                &["a", "b"],
                "put",
                false,
                Some(AwsErrorKind::InvalidPolicy)
            )),
            BTreeSet::from(["batch/a".to_string(), "batch/b".to_string()])
        );
        // One grant: its own fault or not, alone it would fail the same.
        assert!(
            refused(target(
                &["a"],
                "put",
                false,
                Some(AwsErrorKind::InvalidPolicy)
            ))
            .is_empty()
        );
        // Throttling, access denied: not one grant's fault.
        assert!(
            refused(target(
                &["a", "b"],
                "put",
                false,
                Some(AwsErrorKind::Throttled)
            ))
            .is_empty()
        );
        assert!(
            refused(target(
                &["a", "b"],
                "put",
                false,
                Some(AwsErrorKind::AccessDenied)
            ))
            .is_empty()
        );
        // A policy that could not be read was never written.
        assert!(
            refused(target(
                &["a", "b"],
                "none",
                false,
                Some(AwsErrorKind::Other)
            ))
            .is_empty()
        );
        assert!(refused(target(&["a", "b"], "put", true, None)).is_empty());
    }

    #[test]
    fn the_changes_text_names_only_the_grants_own_changes() {
        let r = report(vec![target(&["a", "b"], "put", true, None)]);
        let mut a = result("a", 1, "True", Instant::now()).report;
        assert_eq!(changes_text(&r, &a), "arn:aws:s3:::lake (added XacctA)");
        a.name = "batch/b".into();
        assert_eq!(changes_text(&r, &a), "no statement changes");
    }

    #[test]
    fn the_changes_text_names_each_changed_policy_once_with_its_sids_once() {
        let change = |sid: &str, change| ChangeReport {
            sid: sid.into(),
            grant: "batch/a".into(),
            change,
            before: None,
            after: None,
        };
        let mut bucket = target(&["a"], "put", true, None);
        bucket.changes = vec![
            change("XacctShared1", crate::policy::ChangeKind::Changed),
            change("XacctShared1", crate::policy::ChangeKind::Changed),
            change("XacctB", crate::policy::ChangeKind::Added),
        ];
        let mut role = target(&["a"], "none", true, None);
        role.arn = "arn:aws:iam::111111111111:role/reader".into();
        role.changes.clear();
        let a = result("a", 3, "True", Instant::now()).report;
        assert_eq!(
            changes_text(&report(vec![bucket, role]), &a),
            "arn:aws:s3:::lake (added XacctB; changed XacctShared1)"
        );
    }
}
