//! Which grants are on which resource, kept from the watch events of grants and accounts, with no
//! API call: the grants a run on a resource converges together, and the grants an account's change
//! concerns, found by key instead of by scanning every grant.

use std::collections::{BTreeSet, HashMap, HashSet};

use kube::runtime::reflector::ObjectRef;

use crate::api::{AwsAccount, CrossAccountGrant, ResourceKind, ResourceSpec};
use crate::engine::resource_region;

/// The resource a grant is on: its account, kind, name and region (the account's, or us-east-1,
/// when the grant names none). Grants with the same key share the resource's policy.
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

type GrantRef = ObjectRef<CrossAccountGrant>;

/// What the index holds of one grant.
#[derive(Debug, Clone)]
struct Entry {
    resource: ResourceSpec,
    key: ResourceKey,
    accounts: BTreeSet<String>,
}

/// Grants by resource and by account.
#[derive(Debug, Default)]
pub struct GrantIndex {
    /// Each account's default region, as the account watch last said.
    regions: HashMap<String, Option<String>>,
    grants: HashMap<GrantRef, Entry>,
    on: HashMap<ResourceKey, HashSet<GrantRef>>,
    naming: HashMap<String, HashSet<GrantRef>>,
}

impl GrantIndex {
    /// A grant was created or changed; returns the resources it was and is now on.
    pub fn apply_grant(&mut self, grant: &CrossAccountGrant) -> BTreeSet<ResourceKey> {
        let object = ObjectRef::from_obj(grant);
        let mut touched = self.remove(&object);
        let spec = &grant.spec;
        let resource = spec.resource.clone();
        let key = self.key_of(&resource);
        let accounts: BTreeSet<String> = std::iter::once(resource.account.clone())
            .chain(spec.grantee.account.clone())
            .collect();
        self.on
            .entry(key.clone())
            .or_default()
            .insert(object.clone());
        for account in &accounts {
            self.naming
                .entry(account.clone())
                .or_default()
                .insert(object.clone());
        }
        touched.insert(key.clone());
        self.grants.insert(
            object,
            Entry {
                resource,
                key,
                accounts,
            },
        );
        touched
    }

    /// A grant is gone; returns the resource it was on.
    pub fn delete_grant(&mut self, grant: &CrossAccountGrant) -> BTreeSet<ResourceKey> {
        self.remove(&ObjectRef::from_obj(grant))
    }

    /// An account was created or changed: grants on its resources that name no region move to
    /// its new default region. Returns the resources of the grants that name it.
    pub fn apply_account(&mut self, account: &AwsAccount) -> BTreeSet<ResourceKey> {
        let name = account.metadata.name.clone().unwrap_or_default();
        self.regions
            .insert(name.clone(), account.spec.region.clone());
        self.rekey(&name)
    }

    /// An account is gone: grants on its resources fall back to the default region.
    pub fn delete_account(&mut self, account: &AwsAccount) -> BTreeSet<ResourceKey> {
        let name = account.metadata.name.clone().unwrap_or_default();
        self.regions.remove(&name);
        self.rekey(&name)
    }

    /// Forgets everything (the grant watch starts over with a full list).
    pub fn clear_grants(&mut self) {
        self.grants.clear();
        self.on.clear();
        self.naming.clear();
    }

    /// The grants whose spec names the resource `key`, by namespace and name.
    pub fn on(&self, key: &ResourceKey) -> Vec<GrantRef> {
        sorted(self.on.get(key))
    }

    /// The grants that name `account`, as the resource's account or the grantee's, by namespace
    /// and name.
    pub fn naming(&self, account: &str) -> Vec<GrantRef> {
        sorted(self.naming.get(account))
    }

    fn key_of(&self, resource: &ResourceSpec) -> ResourceKey {
        let region = self.regions.get(&resource.account).cloned().flatten();
        ResourceKey::new(resource, region.as_deref())
    }

    fn remove(&mut self, object: &GrantRef) -> BTreeSet<ResourceKey> {
        let Some(entry) = self.grants.remove(object) else {
            return BTreeSet::new();
        };
        remove_from(&mut self.on, &entry.key, object);
        for account in &entry.accounts {
            remove_from(&mut self.naming, account, object);
        }
        BTreeSet::from([entry.key])
    }

    /// Moves the grants on `account`'s resources to the keys its region now gives them; returns
    /// the keys of every grant naming it, before and after.
    fn rekey(&mut self, account: &str) -> BTreeSet<ResourceKey> {
        let mut touched = BTreeSet::new();
        for object in self.naming(account) {
            let Some(entry) = self.grants.get(&object) else {
                continue;
            };
            let key = self.key_of(&entry.resource);
            touched.insert(entry.key.clone());
            if key != entry.key {
                let old = entry.key.clone();
                remove_from(&mut self.on, &old, &object);
                self.on
                    .entry(key.clone())
                    .or_default()
                    .insert(object.clone());
                if let Some(entry) = self.grants.get_mut(&object) {
                    entry.key = key.clone();
                }
                touched.insert(key);
            }
        }
        touched
    }
}

fn sorted(grants: Option<&HashSet<GrantRef>>) -> Vec<GrantRef> {
    let mut grants: Vec<GrantRef> = grants.into_iter().flatten().cloned().collect();
    grants.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    grants
}

fn remove_from<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, HashSet<GrantRef>>,
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
    use serde_json::json;

    fn grant(namespace: &str, name: &str, resource: serde_json::Value) -> CrossAccountGrant {
        serde_json::from_value(json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"resource": resource, "grantee": {"account": "dev", "principals": ["role/Job"]}, "access": ["read"]}}))
        .expect("a grant")
    }

    fn bucket(name: &str) -> serde_json::Value {
        json!({"account": "data-prod", "kind": "S3Bucket", "name": name})
    }

    fn account(name: &str, region: Option<&str>) -> AwsAccount {
        serde_json::from_value(
            json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount",
            "metadata": {"name": name}, "spec": {"accountId": "222222222222", "region": region}}),
        )
        .expect("an account")
    }

    fn key(name: &str, region: &str) -> ResourceKey {
        ResourceKey {
            account: "data-prod".into(),
            kind: ResourceKind::S3Bucket,
            name: name.into(),
            region: region.into(),
        }
    }

    fn names(refs: Vec<GrantRef>) -> Vec<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn a_created_grant_is_on_its_resource_and_touches_it() {
        let mut index = GrantIndex::default();
        let touched = index.apply_grant(&grant("batch", "a", bucket("lake")));
        assert_eq!(touched, BTreeSet::from([key("lake", "us-east-1")]));
        index.apply_grant(&grant("batch", "b", bucket("lake")));
        index.apply_grant(&grant("web", "c", bucket("pond")));
        assert_eq!(names(index.on(&key("lake", "us-east-1"))), ["a", "b"]);
        assert_eq!(names(index.on(&key("pond", "us-east-1"))), ["c"]);
        assert_eq!(names(index.naming("dev")), ["a", "b", "c"]);
    }

    #[test]
    fn a_grant_edited_to_another_resource_touches_both_and_leaves_the_old() {
        let mut index = GrantIndex::default();
        index.apply_grant(&grant("batch", "a", bucket("lake")));
        let touched = index.apply_grant(&grant("batch", "a", bucket("pond")));
        assert_eq!(
            touched,
            BTreeSet::from([key("lake", "us-east-1"), key("pond", "us-east-1")])
        );
        assert!(index.on(&key("lake", "us-east-1")).is_empty());
        assert_eq!(names(index.on(&key("pond", "us-east-1"))), ["a"]);
    }

    #[test]
    fn a_deleted_grant_touches_its_resource_and_is_gone() {
        let mut index = GrantIndex::default();
        let a = grant("batch", "a", bucket("lake"));
        index.apply_grant(&a);
        assert_eq!(
            index.delete_grant(&a),
            BTreeSet::from([key("lake", "us-east-1")])
        );
        assert!(index.on(&key("lake", "us-east-1")).is_empty());
        assert!(index.naming("data-prod").is_empty() && index.naming("dev").is_empty());
        assert!(
            index.delete_grant(&a).is_empty(),
            "deleting twice touches nothing"
        );
    }

    #[test]
    fn an_accounts_region_keys_the_grants_that_name_none_and_touches_its_grants() {
        let mut index = GrantIndex::default();
        index.apply_account(&account("data-prod", Some("eu-west-1")));
        index.apply_grant(&grant("batch", "a", bucket("lake")));
        let mut elsewhere = bucket("lake");
        elsewhere["region"] = json!("ap-south-1");
        index.apply_grant(&grant("batch", "b", elsewhere));
        assert_eq!(names(index.on(&key("lake", "eu-west-1"))), ["a"]);

        // The account moves to another default region: `a` moves with it, `b` stays.
        let touched = index.apply_account(&account("data-prod", Some("us-west-2")));
        assert_eq!(
            touched,
            BTreeSet::from([
                key("lake", "eu-west-1"),
                key("lake", "us-west-2"),
                key("lake", "ap-south-1")
            ])
        );
        assert!(index.on(&key("lake", "eu-west-1")).is_empty());
        assert_eq!(names(index.on(&key("lake", "us-west-2"))), ["a"]);
        assert_eq!(names(index.on(&key("lake", "ap-south-1"))), ["b"]);

        // Gone: the default region.
        index.delete_account(&account("data-prod", Some("us-west-2")));
        assert_eq!(names(index.on(&key("lake", "us-east-1"))), ["a"]);
    }

    #[test]
    fn a_grantee_account_change_touches_the_grants_naming_it() {
        let mut index = GrantIndex::default();
        index.apply_grant(&grant("batch", "a", bucket("lake")));
        let touched = index.apply_account(&account("dev", None));
        assert_eq!(touched, BTreeSet::from([key("lake", "us-east-1")]));
        assert!(index.apply_account(&account("unused", None)).is_empty());
    }

    #[test]
    fn a_restart_lists_the_grants_again_from_nothing() {
        let mut index = GrantIndex::default();
        index.apply_grant(&grant("batch", "a", bucket("lake")));
        index.apply_grant(&grant("batch", "gone", bucket("lake")));
        index.clear_grants();
        index.apply_grant(&grant("batch", "a", bucket("lake")));
        assert_eq!(names(index.on(&key("lake", "us-east-1"))), ["a"]);
        assert_eq!(names(index.naming("data-prod")), ["a"]);
    }
}
