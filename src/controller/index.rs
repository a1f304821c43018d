//! Which grants concern which resource, kept from the watch events of grants and accounts with no
//! API call. It answers the two questions of the work queue: which resource keys an event touches,
//! and what the run on a key takes as input (the grants that want statements there, and those
//! leaving it: deleted, or moved elsewhere while their status still records places there).
//!
//! It also keeps each grant's status as xacct last set it. Runs on different keys may change one
//! grant's status (a grant moving from one bucket to another is revoked from the first by the
//! first's run and written to the second by the second's), so the index holds the one copy they
//! all change, and each write sends the latest.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;

use crate::api::{
    AwsAccount, CrossAccountGrant, CrossAccountGrantStatus, GrantedTarget, ResourceKind,
    ResourceSpec,
};
use crate::engine::resource_region;

/// The resource a grant is on: its account, kind, name and region (the account's, or us-east-1,
/// when the grant names none). Grants with the same key share the resource's policy; one run per
/// key converges them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// The AwsAccount's name.
    pub account: String,
    /// The kind of resource.
    pub kind: ResourceKind,
    /// Its name as the grant gives it.
    pub name: String,
    /// Its region.
    pub region: String,
}

impl ResourceKey {
    /// The key of `resource`, whose account's default region is `account_region`.
    pub fn new(resource: &ResourceSpec, account_region: Option<&str>) -> Self {
        ResourceKey {
            account: resource.account.clone(),
            kind: resource.kind,
            name: resource.name.clone(),
            region: resource_region(resource, account_region),
        }
    }
}

impl std::fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{:?}/{}/{}",
            self.account, self.kind, self.name, self.region
        )
    }
}

/// A grant, by namespace and name.
pub type GrantRef = ObjectRef<CrossAccountGrant>;

/// The reference of `grant`: namespace and name only (held several times per grant; its uid and
/// resourceVersion would only take memory).
fn grant_ref(grant: &CrossAccountGrant) -> GrantRef {
    let meta = &grant.metadata;
    let object = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
    match &meta.namespace {
        Some(namespace) => object.within(namespace),
        None => object,
    }
}

/// What the index holds of one grant.
#[derive(Debug, Clone)]
struct Entry {
    /// The grant as last watched, without its status (kept in `status`).
    grant: Arc<CrossAccountGrant>,
    /// The key its spec names.
    key: ResourceKey,
    /// Its status as xacct last set it (from the object when first seen).
    status: CrossAccountGrantStatus,
    /// Bumped at each change of `status`.
    version: u64,
    /// The version last written to the API.
    written: u64,
    /// Being deleted: the run on its key revoked (or released) it where its spec says.
    spec_clean: bool,
    /// The keys other than `key` it is linked under in `on` (those of places its status records
    /// elsewhere, when inserted), sorted; empty, so unallocated, for nearly every grant.
    elsewhere: Vec<ResourceKey>,
    /// Keys whose run in flight may write its statements (recorded when the run ends). A vector
    /// freed when empty: an emptied `BTreeSet` keeps its node, room for eleven keys, for good.
    in_flight: Vec<ResourceKey>,
}

impl Entry {
    /// Every key it concerns: its spec's, and those of the places its status records.
    fn keys(&self, regions: &HashMap<String, Option<String>>) -> BTreeSet<ResourceKey> {
        let mut keys: BTreeSet<ResourceKey> = self
            .status
            .targets
            .iter()
            .map(|t| key_in(&t.resource, regions))
            .collect();
        keys.insert(self.key.clone());
        keys
    }

    /// The keys it is linked under.
    fn linked(&self) -> BTreeSet<ResourceKey> {
        let mut keys: BTreeSet<ResourceKey> = self.elsewhere.iter().cloned().collect();
        keys.insert(self.key.clone());
        keys
    }

    /// Whether its resource or its grantee is in `account`.
    fn names(&self, account: &str) -> bool {
        let spec = &self.grant.spec;
        spec.resource.account == account || spec.grantee.account.as_deref() == Some(account)
    }

    fn deleting(&self) -> bool {
        self.grant.metadata.deletion_timestamp.is_some()
    }
}

fn key_in(resource: &ResourceSpec, regions: &HashMap<String, Option<String>>) -> ResourceKey {
    let region = regions.get(&resource.account).cloned().flatten();
    ResourceKey::new(resource, region.as_deref())
}

/// A grant as a run sees it.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The grant (without status).
    pub grant: Arc<CrossAccountGrant>,
    /// Its status as xacct keeps it.
    pub status: CrossAccountGrantStatus,
    /// The places its status records on the run's key.
    pub here: Vec<GrantedTarget>,
}

/// A grant that has to leave a key.
#[derive(Debug, Clone)]
pub struct Leaving {
    /// The grant and its places there.
    pub tracked: Tracked,
    /// Being deleted (else: it moved to another key).
    pub deleted: bool,
    /// The key is the one its spec names: revoke where the spec says too.
    pub spec_places: bool,
}

/// The input of the run on one key.
#[derive(Debug, Clone, Default)]
pub struct RunInput {
    /// Grants whose spec names the key and that are not being deleted, by namespace and name.
    pub wanted: Vec<Tracked>,
    /// Grants to remove from the key.
    pub leaving: Vec<Leaving>,
}

impl RunInput {
    /// Nothing to do on the key.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty() && self.leaving.is_empty()
    }
}

/// What an account's change means for the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// The keys whose runs concern the grants it moved or that name it.
    pub keys: BTreeSet<ResourceKey>,
    /// Its generation or Ready status changed (what shares on it react to).
    pub state_changed: bool,
}

/// Grants by resource key and by account, and their status.
#[derive(Debug, Default)]
pub struct GrantIndex {
    /// Each account's default region, as the account watch last said.
    regions: HashMap<String, Option<String>>,
    /// Each account's generation and Ready status, as the account watch last said.
    account_states: HashMap<String, (Option<i64>, Option<String>)>,
    /// Boxed: a map's spare slots then take a pointer, not an entry.
    grants: HashMap<Arc<GrantRef>, Box<Entry>>,
    /// The grants each key concerns (its spec's, its recorded places').
    on: HashMap<ResourceKey, HashSet<Arc<GrantRef>>>,
    /// Grants seen since the watch started listing again (`None`: not listing).
    relisting: Option<HashSet<GrantRef>>,
    /// The first full list has been seen.
    synced: bool,
}

impl GrantIndex {
    /// A grant was created or changed; returns the keys whose runs it concerns (before and after
    /// the change). A change a run does not need to see (its own status write, the finalizer it
    /// added) touches nothing. Takes the grant: the index keeps it without a copy.
    pub fn apply_grant(&mut self, mut grant: CrossAccountGrant) -> BTreeSet<ResourceKey> {
        let object = grant_ref(&grant);
        if let Some(seen) = self.relisting.as_mut() {
            seen.insert(object.clone());
        }
        let previous = self.grants.get(&object);
        let same_grant = previous.is_some_and(|p| p.grant.metadata.uid == grant.metadata.uid);
        if same_grant
            && previous.is_some_and(|p| {
                same_but_version(&p.grant.metadata, &grant.metadata) && p.grant.spec == grant.spec
            })
        {
            // Seen already (a watch that starts again replays every object), or only its status
            // changed (the echo of a status write; the index keeps its own): nothing to copy.
            // Compared whole but for the version: an emulated API server may not bump
            // resourceVersion on every change.
            return BTreeSet::new();
        }
        let mut status = grant.status.take().unwrap_or_default();
        compact(&mut status);
        compact_grant(&mut grant);
        let key = key_in(&grant.spec.resource, &self.regions);
        let relevant = match previous {
            Some(p) if same_grant => {
                p.grant.metadata.generation != grant.metadata.generation
                    || p.grant.metadata.deletion_timestamp != grant.metadata.deletion_timestamp
                    || p.key != key
            }
            _ => true,
        };
        let mut entry = Box::new(Entry {
            grant: Arc::new(grant),
            key,
            status,
            version: 0,
            written: 0,
            spec_clean: false,
            elsewhere: Vec::new(),
            in_flight: Vec::new(),
        });
        if same_grant && let Some(p) = previous {
            // The status xacct keeps is newer than the object's (the echo of a write may come
            // after the next change); so is what it knows of its spec places.
            entry.status = p.status.clone();
            entry.version = p.version;
            entry.written = p.written;
            entry.spec_clean = p.spec_clean && p.grant.spec == entry.grant.spec;
            entry.in_flight = p.in_flight.clone();
        }
        let mut touched = self.remove(&object);
        touched.extend(self.insert(object, entry));
        if relevant { touched } else { BTreeSet::new() }
    }

    /// A grant is gone; returns the keys it concerned.
    pub fn delete_grant(&mut self, grant: &CrossAccountGrant) -> BTreeSet<ResourceKey> {
        self.remove(&grant_ref(grant))
    }

    /// The grant watch lists every grant again (a restart or a lost watch).
    pub fn begin_relist(&mut self) {
        self.relisting = Some(HashSet::new());
    }

    /// The list is complete: grants not in it are gone. Returns the keys they concerned.
    pub fn end_relist(&mut self) -> BTreeSet<ResourceKey> {
        self.synced = true;
        let Some(seen) = self.relisting.take() else {
            return BTreeSet::new();
        };
        let gone: Vec<GrantRef> = self
            .grants
            .keys()
            .filter(|g| !seen.contains(g.as_ref()))
            .map(|g| GrantRef::clone(g))
            .collect();
        gone.iter().flat_map(|g| self.remove(g)).collect()
    }

    /// Whether the first full list of grants has been seen.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// An account was created or changed: grants on its resources that name no region move to
    /// its new default region, and a change of its spec or readiness concerns every grant naming
    /// it. Returns the keys of those grants, before and after, and whether its spec or readiness
    /// changed.
    pub fn apply_account(&mut self, account: &AwsAccount) -> AccountChange {
        let name = account.metadata.name.clone().unwrap_or_default();
        let mut keys = BTreeSet::new();
        if self.regions.get(&name) != Some(&account.spec.region) {
            self.regions
                .insert(name.clone(), account.spec.region.clone());
            keys = self.rekey(&name);
        }
        let state = account_state(account);
        let state_changed = self.account_states.insert(name.clone(), state.clone()) != Some(state);
        if state_changed {
            keys.extend(self.keys_naming(&name));
        }
        AccountChange {
            keys,
            state_changed,
        }
    }

    /// An account is gone: grants on its resources fall back to the default region, and every
    /// grant naming it is run again (to say so).
    pub fn delete_account(&mut self, account: &AwsAccount) -> BTreeSet<ResourceKey> {
        let name = account.metadata.name.clone().unwrap_or_default();
        self.regions.remove(&name);
        self.account_states.remove(&name);
        let mut touched = self.rekey(&name);
        touched.extend(self.keys_naming(&name));
        touched
    }

    /// The keys whose runs concern the grants naming `account` (as the resource's or the
    /// grantee's account).
    fn keys_naming(&self, account: &str) -> BTreeSet<ResourceKey> {
        self.grants
            .values()
            .filter(|e| e.names(account))
            .flat_map(|e| e.keys(&self.regions))
            .collect()
    }

    /// The grants naming `account`, by namespace and name. A scan: accounts change rarely, and a
    /// map by account would cost every grant an entry.
    pub fn naming(&self, account: &str) -> Vec<GrantRef> {
        sorted(
            self.grants
                .iter()
                .filter(|(_, e)| e.names(account))
                .map(|(g, _)| GrantRef::clone(g)),
        )
    }

    /// The key of `resource` with the accounts' regions as the index knows them.
    pub fn key_of(&self, resource: &ResourceSpec) -> ResourceKey {
        key_in(resource, &self.regions)
    }

    /// The input of the run on `key`.
    pub fn run_input(&self, key: &ResourceKey) -> RunInput {
        let mut input = RunInput::default();
        for object in sorted(
            self.on
                .get(key)
                .into_iter()
                .flatten()
                .map(|g| GrantRef::clone(g)),
        ) {
            let Some(entry) = self.grants.get(&object) else {
                continue;
            };
            let here: Vec<GrantedTarget> = entry
                .status
                .targets
                .iter()
                .filter(|t| key_in(&t.resource, &self.regions) == *key)
                .cloned()
                .collect();
            let tracked = Tracked {
                grant: entry.grant.clone(),
                status: entry.status.clone(),
                here,
            };
            let home = entry.key == *key;
            if entry.deleting() {
                // Also once clean: the run releases its finalizer.
                input.leaving.push(Leaving {
                    tracked,
                    deleted: true,
                    spec_places: home && !entry.spec_clean,
                });
            } else if home {
                input.wanted.push(tracked);
            } else if !tracked.here.is_empty() {
                input.leaving.push(Leaving {
                    tracked,
                    deleted: false,
                    spec_places: false,
                });
            }
        }
        input
    }

    /// The status xacct keeps for `grant` (of this uid), with the places it records on `key`
    /// replaced by `here`, then changed by `change`; returns whether it changed.
    pub fn update_status(
        &mut self,
        grant: &CrossAccountGrant,
        key: &ResourceKey,
        here: Vec<GrantedTarget>,
        change: impl FnOnce(&mut CrossAccountGrantStatus),
    ) -> bool {
        let object = grant_ref(grant);
        let Some(entry) = self.grants.get(&object) else {
            return false;
        };
        if entry.grant.metadata.uid != grant.metadata.uid {
            return false;
        }
        let mut status = entry.status.clone();
        status
            .targets
            .retain(|t| key_in(&t.resource, &self.regions) != *key);
        status.targets.extend(here);
        change(&mut status);
        compact(&mut status);
        if status == entry.status {
            return false;
        }
        let Some(mut entry) = self.grants.remove(&object) else {
            return false;
        };
        self.unlink(&object, &entry);
        entry.status = status;
        entry.version += 1;
        self.insert(object, entry);
        true
    }

    /// A run on `key` that may write the statements of `grants` starts: none of them is clean
    /// until it ends ([`GrantIndex::end_run`]), whatever other runs find.
    pub fn begin_run<'a>(
        &mut self,
        key: &ResourceKey,
        grants: impl IntoIterator<Item = &'a CrossAccountGrant>,
    ) {
        for grant in grants {
            if let Some(entry) = self.grants.get_mut(&grant_ref(grant))
                && !entry.in_flight.contains(key)
            {
                entry.in_flight.push(key.clone());
            }
        }
    }

    /// The run on `key` ended (its places are recorded).
    pub fn end_run<'a>(
        &mut self,
        key: &ResourceKey,
        grants: impl IntoIterator<Item = &'a CrossAccountGrant>,
    ) {
        for grant in grants {
            if let Some(entry) = self.grants.get_mut(&grant_ref(grant)) {
                entry.in_flight.retain(|k| k != key);
                if entry.in_flight.is_empty() {
                    entry.in_flight = Vec::new();
                }
            }
        }
    }

    /// Whether `grant` is still the index's (same uid, generation and deletion): a run that
    /// began with another one records its places, not its conditions.
    pub fn is_current(&self, grant: &CrossAccountGrant) -> bool {
        self.grants.get(&grant_ref(grant)).is_some_and(|e| {
            let (now, then) = (&e.grant.metadata, &grant.metadata);
            now.uid == then.uid
                && now.generation == then.generation
                && now.deletion_timestamp == then.deletion_timestamp
        })
    }

    /// Being deleted, `grant`'s statements were removed where its spec says.
    pub fn spec_cleaned(&mut self, grant: &CrossAccountGrant) {
        if let Some(entry) = self.grants.get_mut(&grant_ref(grant))
            && entry.grant.metadata.uid == grant.metadata.uid
        {
            entry.spec_clean = true;
        }
    }

    /// Whether `grant` is being deleted and has no statement left anywhere xacct knows of: its
    /// finalizer may go.
    pub fn clean(&self, grant: &CrossAccountGrant) -> bool {
        self.grants.get(&grant_ref(grant)).is_some_and(|e| {
            e.grant.metadata.uid == grant.metadata.uid
                && e.deleting()
                && e.spec_clean
                && e.status.targets.is_empty()
                && e.in_flight.is_empty()
        })
    }

    /// `grant`'s status to write, with its version, when it differs from the last one written.
    pub fn unwritten_status(
        &self,
        grant: &CrossAccountGrant,
    ) -> Option<(u64, CrossAccountGrantStatus)> {
        let entry = self.grants.get(&grant_ref(grant))?;
        (entry.grant.metadata.uid == grant.metadata.uid && entry.version != entry.written)
            .then(|| (entry.version, entry.status.clone()))
    }

    /// The status of `version` was written for `grant`.
    pub fn status_written(&mut self, grant: &CrossAccountGrant, version: u64) {
        if let Some(entry) = self.grants.get_mut(&grant_ref(grant))
            && entry.grant.metadata.uid == grant.metadata.uid
            && entry.written < version
        {
            entry.written = version;
        }
    }

    /// Every grant (without status).
    pub fn grants(&self) -> Vec<Arc<CrossAccountGrant>> {
        self.grants.values().map(|e| e.grant.clone()).collect()
    }

    /// Applies `f` to each grant's status (metrics read them without copying).
    pub fn for_each_status(&self, mut f: impl FnMut(&CrossAccountGrantStatus)) {
        self.grants.values().for_each(|e| f(&e.status));
    }

    /// Links `entry` under its keys (one reference shared by the maps).
    fn insert(&mut self, object: GrantRef, mut entry: Box<Entry>) -> BTreeSet<ResourceKey> {
        let object = Arc::new(object);
        let keys = entry.keys(&self.regions);
        entry.elsewhere = keys.iter().filter(|k| **k != entry.key).cloned().collect();
        for key in &keys {
            self.on
                .entry(key.clone())
                .or_default()
                .insert(object.clone());
        }
        self.grants.insert(object, entry);
        keys
    }

    fn remove(&mut self, object: &GrantRef) -> BTreeSet<ResourceKey> {
        match self.grants.remove(object) {
            Some(entry) => self.unlink(object, &entry),
            None => BTreeSet::new(),
        }
    }

    fn unlink(&mut self, object: &GrantRef, entry: &Entry) -> BTreeSet<ResourceKey> {
        let keys = entry.linked();
        for key in &keys {
            remove_from(&mut self.on, key, object);
        }
        keys
    }

    /// Re-keys the grants naming `account` with the regions now known; returns the keys, before
    /// and after, of those whose keys changed.
    fn rekey(&mut self, account: &str) -> BTreeSet<ResourceKey> {
        let mut touched = BTreeSet::new();
        for object in self.naming(account) {
            let Some(mut entry) = self.grants.remove(&object) else {
                continue;
            };
            let before = self.unlink(&object, &entry);
            entry.key = key_in(&entry.grant.spec.resource, &self.regions);
            let after = self.insert(object, entry);
            if before != after {
                touched.extend(before);
                touched.extend(after);
            }
        }
        touched
    }
}

/// Frees the spare room of a status's lists: a list grown from empty has room for four, and one
/// target or condition is the common case (held for every grant, it would take more than the rest
/// of the status).
fn compact(status: &mut CrossAccountGrantStatus) {
    status.conditions.shrink_to_fit();
    status.targets.shrink_to_fit();
    for target in &mut status.targets {
        target.sids.shrink_to_fit();
    }
}

/// The same for the lists of a grant's spec and its finalizers.
fn compact_grant(grant: &mut CrossAccountGrant) {
    if let Some(finalizers) = grant.metadata.finalizers.as_mut() {
        finalizers.shrink_to_fit();
    }
    grant.spec.access.shrink_to_fit();
    grant.spec.actions.shrink_to_fit();
    grant.spec.grantee.principals.shrink_to_fit();
}

/// Whether two versions of an object's metadata differ at most in their resourceVersion.
fn same_but_version(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    if a.resource_version == b.resource_version {
        return a == b;
    }
    let mut b = b.clone();
    b.resource_version.clone_from(&a.resource_version);
    *a == b
}

/// What grants and shares on an account react to: its generation and its Ready condition's
/// status.
pub fn account_state(account: &AwsAccount) -> (Option<i64>, Option<String>) {
    let ready = account.status.as_ref().and_then(|s| {
        super::conditions::find(&s.conditions, super::conditions::READY).map(|c| c.status.clone())
    });
    (account.metadata.generation, ready)
}

fn sorted(grants: impl Iterator<Item = GrantRef>) -> Vec<GrantRef> {
    let mut grants: Vec<GrantRef> = grants.collect();
    grants.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    grants
}

fn remove_from<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, HashSet<Arc<GrantRef>>>,
    key: &K,
    object: &GrantRef,
) {
    if let Some(set) = map.get_mut(key) {
        set.remove(object);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::fixtures::{grant, granted};
    use serde_json::json;

    /// `g` with its status recording a place on `bucket`.
    fn placed(mut g: CrossAccountGrant, bucket: &str) -> CrossAccountGrant {
        g.status = Some(CrossAccountGrantStatus {
            targets: vec![target(bucket)],
            ..Default::default()
        });
        g
    }

    fn target(bucket: &str) -> GrantedTarget {
        granted(bucket, 1)
    }

    fn deleting(g: CrossAccountGrant) -> CrossAccountGrant {
        let mut g = g;
        g.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).expect("a time"),
        ));
        g
    }

    fn account(name: &str, region: Option<&str>) -> AwsAccount {
        serde_json::from_value(
            json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount",
            "metadata": {"name": name}, "spec": {"accountId": "222222222222", "region": region}}),
        )
        .expect("an account")
    }

    fn key(name: &str) -> ResourceKey {
        key_in_region(name, "us-east-1")
    }

    fn key_in_region(name: &str, region: &str) -> ResourceKey {
        ResourceKey {
            account: "data-prod".into(),
            kind: ResourceKind::S3Bucket,
            name: name.into(),
            region: region.into(),
        }
    }

    fn keys(names: &[&str]) -> BTreeSet<ResourceKey> {
        names.iter().map(|n| key(n)).collect()
    }

    fn wanted(input: &RunInput) -> Vec<String> {
        input
            .wanted
            .iter()
            .map(|t| t.grant.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    fn leaving(input: &RunInput) -> Vec<(String, bool, bool)> {
        input
            .leaving
            .iter()
            .map(|l| {
                (
                    l.tracked.grant.metadata.name.clone().unwrap_or_default(),
                    l.deleted,
                    l.spec_places,
                )
            })
            .collect()
    }

    #[test]
    fn a_created_grant_touches_its_key_and_is_wanted_there() {
        let mut index = GrantIndex::default();
        assert_eq!(index.apply_grant(grant("a", "lake")), keys(&["lake"]));
        index.apply_grant(grant("b", "lake"));
        index.apply_grant(grant("c", "pond"));
        let input = index.run_input(&key("lake"));
        assert_eq!(wanted(&input), ["a", "b"]);
        assert!(input.leaving.is_empty());
        assert_eq!(wanted(&index.run_input(&key("pond"))), ["c"]);
        assert!(index.run_input(&key("sea")).is_empty());
    }

    #[test]
    fn a_grant_moved_to_another_key_touches_both_and_leaves_the_old_one_while_placed_there() {
        let mut index = GrantIndex::default();
        index.apply_grant(placed(grant("a", "lake"), "lake"));
        let mut moved = placed(grant("a", "pond"), "lake");
        moved.metadata.generation = Some(2);
        assert_eq!(index.apply_grant(moved.clone()), keys(&["lake", "pond"]));
        assert_eq!(wanted(&index.run_input(&key("pond"))), ["a"]);
        let old = index.run_input(&key("lake"));
        assert!(old.wanted.is_empty());
        assert_eq!(leaving(&old), [("a".to_string(), false, false)]);
        assert_eq!(old.leaving[0].tracked.here, [target("lake")]);

        // The run on the old key removed it: nothing more there.
        let changed = index.update_status(&moved, &key("lake"), Vec::new(), |_| {});
        assert!(changed);
        assert!(index.run_input(&key("lake")).is_empty());
        assert_eq!(
            index
                .unwritten_status(&moved)
                .map(|(v, s)| (v, s.targets.len())),
            Some((1, 0))
        );
    }

    #[test]
    fn a_change_of_the_principals_touches_its_key_and_its_own_status_write_touches_nothing() {
        let mut index = GrantIndex::default();
        index.apply_grant(grant("a", "lake"));
        let mut edited = grant("a", "lake");
        edited.spec.grantee.principals = vec!["role/Other".into()];
        edited.metadata.generation = Some(2);
        assert_eq!(index.apply_grant(edited.clone()), keys(&["lake"]));
        assert_eq!(
            index.run_input(&key("lake")).wanted[0]
                .grant
                .spec
                .grantee
                .principals,
            ["role/Other"]
        );
        // The echo of its status write, and the finalizer xacct added: no run needed.
        let echo = placed(edited.clone(), "lake");
        assert!(index.apply_grant(echo.clone()).is_empty());
        let mut finalized = edited;
        finalized.metadata.finalizers = Some(vec!["xacct.dev/revoke".into()]);
        finalized.metadata.resource_version = Some("7".into());
        assert!(index.apply_grant(finalized.clone()).is_empty());
        // A watch that starts again replays it: the index keeps what it holds.
        let held = index.run_input(&key("lake")).wanted[0].grant.clone();
        assert!(index.apply_grant(finalized.clone()).is_empty());
        let after = index.run_input(&key("lake")).wanted[0].grant.clone();
        assert!(Arc::ptr_eq(&held, &after), "the replayed object was copied");
        // The echo of a status write bumps only the resourceVersion: nothing is copied either.
        let mut echo = placed(finalized.clone(), "lake");
        echo.metadata.resource_version = Some("8".into());
        assert!(index.apply_grant(echo.clone()).is_empty());
        let after = index.run_input(&key("lake")).wanted[0].grant.clone();
        assert!(Arc::ptr_eq(&held, &after), "a status echo was copied");
        // Its deletion, even without a new resourceVersion (as the kube emulator marks it), is not
        // an echo.
        assert_eq!(index.apply_grant(deleting(finalized)), keys(&["lake"]));
    }

    #[test]
    fn the_status_xacct_keeps_is_not_rolled_back_by_an_older_echo() {
        let mut index = GrantIndex::default();
        let a = placed(grant("a", "lake"), "lake");
        index.apply_grant(a.clone());
        index.update_status(
            &a,
            &key("lake"),
            vec![target("lake"), target("lake2")],
            |s| s.observed_generation = Some(1),
        );
        // The watch brings the object as it was before that write.
        index.apply_grant(a.clone());
        let (version, status) = index.unwritten_status(&a).expect("to write");
        assert_eq!(status.targets.len(), 2);
        index.status_written(&a, version);
        assert!(index.unwritten_status(&a).is_none(), "written once");
    }

    #[test]
    fn a_deleted_grant_leaves_every_key_it_is_on_and_is_clean_once_revoked_everywhere() {
        let mut index = GrantIndex::default();
        // Moved from lake to pond, its statements on lake not revoked yet.
        let a = placed(grant("a", "pond"), "lake");
        index.apply_grant(a.clone());
        let gone = deleting(a);
        assert_eq!(index.apply_grant(gone.clone()), keys(&["lake", "pond"]));
        assert_eq!(
            leaving(&index.run_input(&key("pond"))),
            [("a".to_string(), true, true)],
            "its spec's key revokes where the spec says"
        );
        assert_eq!(
            leaving(&index.run_input(&key("lake"))),
            [("a".to_string(), true, false)]
        );
        assert!(!index.clean(&gone));
        index.spec_cleaned(&gone);
        index.update_status(&gone, &key("pond"), Vec::new(), |_| {});
        assert!(!index.clean(&gone), "still placed on lake");
        index.update_status(&gone, &key("lake"), Vec::new(), |_| {});
        assert!(index.clean(&gone));
        assert_eq!(
            leaving(&index.run_input(&key("pond"))),
            [("a".to_string(), true, false)],
            "still in its key's run, which releases the finalizer"
        );
        assert!(index.run_input(&key("lake")).is_empty());
        assert_eq!(index.delete_grant(&gone), keys(&["pond"]));
        assert!(index.run_input(&key("pond")).is_empty());
    }

    #[test]
    fn an_accounts_region_moves_the_grants_naming_none_and_a_readiness_change_touches_their_keys() {
        let mut index = GrantIndex::default();
        index.apply_account(&account("data-prod", Some("eu-west-1")));
        index.apply_grant(grant("a", "lake"));
        assert_eq!(
            wanted(&index.run_input(&key_in_region("lake", "eu-west-1"))),
            ["a"]
        );
        assert!(
            index
                .apply_account(&account("data-prod", Some("eu-west-1")))
                .keys
                .is_empty(),
            "the same account again: nothing moves"
        );
        let touched = index.apply_account(&account("data-prod", Some("us-west-2")));
        assert!(!touched.state_changed, "a region is not readiness");
        assert_eq!(
            touched.keys,
            BTreeSet::from([
                key_in_region("lake", "eu-west-1"),
                key_in_region("lake", "us-west-2")
            ])
        );
        assert_eq!(
            wanted(&index.run_input(&key_in_region("lake", "us-west-2"))),
            ["a"]
        );
        // Readiness: the keys of every grant naming the account, the grantee's too.
        let mut dev = account("dev", None);
        index.apply_account(&dev);
        dev.status = Some(serde_json::from_value(json!({"conditions": [{"type": "Ready",
            "status": "True", "reason": "Verified", "message": "", "lastTransitionTime": "2027-01-01T00:00:00Z"}]}))
        .expect("a status"));
        assert_eq!(
            index.apply_account(&dev),
            AccountChange {
                keys: BTreeSet::from([key_in_region("lake", "us-west-2")]),
                state_changed: true,
            }
        );
        assert_eq!(
            index.apply_account(&dev),
            AccountChange::default(),
            "the same readiness"
        );
        assert!(index.apply_account(&account("other", None)).keys.is_empty());
        let touched = index.delete_account(&account("data-prod", None));
        assert_eq!(
            touched,
            BTreeSet::from([key_in_region("lake", "us-west-2"), key("lake")])
        );
        assert_eq!(wanted(&index.run_input(&key("lake"))), ["a"]);
    }

    #[test]
    fn the_status_kept_for_a_grant_has_no_spare_room_in_its_lists() {
        // Held for every grant: a list grown from empty keeps room for four.
        let mut index = GrantIndex::default();
        let listed = placed(grant("a", "lake"), "lake");
        index.apply_grant(listed.clone());
        let mut here = Vec::with_capacity(8);
        here.push(target("lake"));
        index.update_status(&listed, &key("lake"), here, |status| {
            status.conditions.push(
                serde_json::from_value(
                    json!({"type": "Ready", "status": "True", "reason": "Applied",
                    "message": "in place", "lastTransitionTime": "2026-12-07T10:00:00Z"}),
                )
                .expect("a condition"),
            );
            status.targets[0].sids.reserve(16);
        });
        let entry = &index.grants[&grant_ref(&listed)];
        assert_eq!(entry.status.targets.len(), 1);
        assert_eq!(entry.status.conditions.len(), 1);
        assert_eq!(entry.status.targets.capacity(), 1);
        assert_eq!(entry.status.conditions.capacity(), 1);
        assert_eq!(
            entry.status.targets[0].sids.capacity(),
            entry.status.targets[0].sids.len()
        );
        assert_eq!(
            entry.in_flight.capacity(),
            0,
            "no run in flight: nothing allocated"
        );
    }

    #[test]
    fn a_run_that_ended_leaves_nothing_allocated_for_its_grants() {
        let mut index = GrantIndex::default();
        let a = grant("a", "lake");
        index.apply_grant(a.clone());
        index.begin_run(&key("lake"), [&a]);
        assert!(!index.grants[&grant_ref(&a)].in_flight.is_empty());
        index.end_run(&key("lake"), [&a]);
        assert_eq!(index.grants[&grant_ref(&a)].in_flight.capacity(), 0);
    }

    #[test]
    fn a_grant_in_a_run_in_flight_elsewhere_is_not_clean_until_that_run_records_its_places() {
        let mut index = GrantIndex::default();
        let a = grant("a", "lake");
        index.apply_grant(a.clone());
        // The run on lake starts with it; meanwhile it moves to pond and is deleted.
        index.begin_run(&key("lake"), [&a]);
        let mut moved = grant("a", "pond");
        moved.metadata.generation = Some(2);
        index.apply_grant(moved.clone());
        assert!(!index.is_current(&a), "the run's grant is an older one");
        let gone = deleting(moved);
        index.apply_grant(gone.clone());
        index.spec_cleaned(&gone);
        assert!(!index.clean(&gone), "the run on lake may still write it");
        // That run ends having written it there: lake's next run revokes it.
        index.update_status(&a, &key("lake"), vec![target("lake")], |_| {});
        index.end_run(&key("lake"), [&a]);
        assert!(!index.clean(&gone));
        assert_eq!(
            leaving(&index.run_input(&key("lake"))),
            [("a".to_string(), true, false)]
        );
        index.update_status(&gone, &key("lake"), Vec::new(), |_| {});
        assert!(index.clean(&gone));
    }

    #[test]
    fn a_restart_lists_again_and_forgets_the_grants_gone_meanwhile() {
        let mut index = GrantIndex::default();
        index.begin_relist();
        index.apply_grant(grant("a", "lake"));
        index.apply_grant(placed(grant("gone", "pond"), "pond"));
        assert!(!index.synced());
        index.end_relist();
        assert!(index.synced());
        index.begin_relist();
        index.apply_grant(grant("a", "lake"));
        assert_eq!(index.end_relist(), keys(&["pond"]), "the gone grant's keys");
        assert!(index.run_input(&key("pond")).is_empty());
        assert_eq!(index.naming("data-prod").len(), 1);
    }

    #[test]
    fn a_grant_recreated_under_the_same_name_starts_from_its_own_status() {
        let mut index = GrantIndex::default();
        let old = grant("a", "lake");
        index.apply_grant(old.clone());
        index.update_status(&old, &key("lake"), vec![target("lake")], |_| {});
        let mut new = grant("a", "lake");
        new.metadata.uid = Some("uid-a2".into());
        assert_eq!(index.apply_grant(new.clone()), keys(&["lake"]));
        assert!(index.run_input(&key("lake")).wanted[0].here.is_empty());
        assert!(
            !index.update_status(&old, &key("lake"), Vec::new(), |_| {}),
            "the old grant's run changes nothing of the new one"
        );
    }
}
