//! Statement ownership through Sid markers.
//!
//! A statement xacct writes has the Sid `Xacct` + 6 hex digits naming the instance + 16 hex digits
//! naming the grant (a hash of instance, namespace and name) + a purpose word starting with a
//! capital letter, e.g. `Xacct3f9a1c0b1c2d3e4f5a6b7c8Objects`. Only letters and digits: IAM refuses
//! other characters in a Sid. The fixed-width lower-case tags make the grant part unambiguous, so a
//! statement belongs to exactly one grant, and every other Sid (or none) is someone else's.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Every Sid xacct writes starts with this.
pub const SID_PREFIX: &str = "Xacct";
const INSTANCE_TAG_LEN: usize = 6;
/// Hex digits naming a grant in a Sid.
pub(super) const GRANT_TAG_LEN: usize = 16;

/// Identifies the grant (of one xacct instance) that owns statements.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantOwner {
    /// The xacct instance id (several installations may share accounts).
    pub instance: String,
    /// The grant's namespace.
    pub namespace: String,
    /// The grant's name.
    pub name: String,
    /// The Sid prefix of its statements.
    prefix: String,
}

impl GrantOwner {
    /// The owner of a grant's statements.
    pub fn new(instance: &str, namespace: &str, name: &str) -> Self {
        let grant = hex_digest(&[instance, namespace, name]);
        GrantOwner {
            instance: instance.into(),
            namespace: namespace.into(),
            name: name.into(),
            prefix: format!(
                "{}{}",
                instance_sid_prefix(instance),
                &grant[..GRANT_TAG_LEN]
            ),
        }
    }

    /// A grant of `instance` known only by the Sid prefix of its statements: one that no longer
    /// exists (its name cannot be recovered from the hash).
    pub fn orphan(instance: &str, sid_prefix: &str) -> Self {
        GrantOwner {
            instance: instance.into(),
            namespace: String::new(),
            name: sid_prefix.into(),
            prefix: sid_prefix.into(),
        }
    }

    /// The Sid prefix shared by all of this grant's statements.
    pub fn sid_prefix(&self) -> String {
        self.prefix.clone()
    }

    /// The Sid of this grant's statement for `purpose` (letters and digits, starting with a capital).
    pub fn sid(&self, purpose: &str) -> String {
        debug_assert!(
            is_purpose(purpose),
            "purpose {purpose:?} must be alphanumeric and start upper case"
        );
        format!("{}{purpose}", self.sid_prefix())
    }

    /// Whether `sid` marks a statement of this grant.
    pub fn owns(&self, sid: &str) -> bool {
        sid.strip_prefix(&self.sid_prefix()).is_some_and(is_purpose)
    }

    /// `namespace/name`, for people.
    pub fn display_name(&self) -> String {
        if self.namespace.is_empty() {
            format!("(a deleted grant, Sids {}…)", self.name)
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// The Sid prefix of the grant of `instance` that wrote the statement `sid`; `None` when `sid` is
/// not one of that instance's.
pub fn owner_prefix<'a>(instance: &str, sid: &'a str) -> Option<&'a str> {
    let len = SID_PREFIX.len() + INSTANCE_TAG_LEN + GRANT_TAG_LEN;
    let prefix = sid.get(..len)?;
    let grant = &prefix[SID_PREFIX.len() + INSTANCE_TAG_LEN..];
    (sid.starts_with(&instance_sid_prefix(instance))
        && grant.chars().all(|c| c.is_ascii_hexdigit())
        && is_purpose(&sid[len..]))
    .then_some(prefix)
}

/// The Sid prefix of every statement of an xacct instance.
pub fn instance_sid_prefix(instance: &str) -> String {
    format!(
        "{SID_PREFIX}{}",
        &hex_digest(&[instance])[..INSTANCE_TAG_LEN]
    )
}

/// The grants whose statements a merge may replace; statements of every other owner are kept.
#[derive(Debug, Clone, Default)]
pub struct OwnershipScope {
    by_prefix: BTreeMap<String, GrantOwner>,
}

impl OwnershipScope {
    /// A scope of the given grants.
    pub fn new<'a>(owners: impl IntoIterator<Item = &'a GrantOwner>) -> Self {
        OwnershipScope {
            by_prefix: owners
                .into_iter()
                .map(|o| (o.sid_prefix(), o.clone()))
                .collect(),
        }
    }

    /// The grant in scope that owns the statement with this Sid, if any.
    pub fn owner_of(&self, sid: Option<&str>) -> Option<&GrantOwner> {
        let sid = sid?;
        let prefix_len = SID_PREFIX.len() + INSTANCE_TAG_LEN + GRANT_TAG_LEN;
        let prefix = sid.get(..prefix_len)?;
        self.by_prefix.get(prefix).filter(|owner| owner.owns(sid))
    }

    /// Both scopes' grants.
    pub fn with(&self, other: &OwnershipScope) -> OwnershipScope {
        let mut by_prefix = self.by_prefix.clone();
        by_prefix.extend(other.by_prefix.clone());
        OwnershipScope { by_prefix }
    }

    /// Whether no grant is in scope.
    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// Whether the grant whose statements have this Sid prefix is in scope.
    pub fn contains_prefix(&self, prefix: &str) -> bool {
        self.by_prefix.contains_key(prefix)
    }
}

fn is_purpose(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

pub(super) fn hex_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // A separator that cannot appear in names keeps ("a-b","c") and ("a","b-c") apart.
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_alphanumeric_deterministic_and_recognisable() {
        let owner = GrantOwner::new("default", "batch", "batch-reads-lake");
        let sid = owner.sid("Objects");
        assert!(sid.starts_with("Xacct"));
        assert!(sid.chars().all(|c| c.is_ascii_alphanumeric()), "{sid}");
        assert_eq!(
            sid,
            GrantOwner::new("default", "batch", "batch-reads-lake").sid("Objects")
        );
        assert!(owner.owns(&sid));
        assert!(sid.starts_with(&instance_sid_prefix("default")));
    }

    #[test]
    fn different_grants_and_instances_do_not_own_each_other() {
        let a = GrantOwner::new("default", "a-b", "c");
        let b = GrantOwner::new("default", "a", "b-c");
        let c = GrantOwner::new("other", "a-b", "c");
        assert_ne!(a.sid_prefix(), b.sid_prefix());
        assert!(!b.owns(&a.sid("Use")));
        assert!(!c.owns(&a.sid("Use")));
        assert_ne!(instance_sid_prefix("default"), instance_sid_prefix("other"));
    }

    #[test]
    fn foreign_sids_are_not_owned() {
        let owner = GrantOwner::new("default", "ns", "g");
        let scope = OwnershipScope::new([&owner]);
        for foreign in [
            None,
            Some(""),
            Some("AllowReadFromDev"),
            Some("Xacct"),
            Some(&format!("{}-x", owner.sid_prefix()) as &str),
        ] {
            assert!(scope.owner_of(foreign).is_none(), "{foreign:?}");
        }
        assert_eq!(scope.owner_of(Some(&owner.sid("Bucket"))), Some(&owner));
        // A lower-case continuation would be ambiguous with another tag, so it is not ours.
        assert!(
            scope
                .owner_of(Some(&format!("{}bucket", owner.sid_prefix())))
                .is_none()
        );
    }

    #[test]
    fn an_orphan_is_known_by_its_sid_prefix_alone() {
        let gone = GrantOwner::new("default", "batch", "gone");
        let sid = gone.sid("Objects");
        let prefix = owner_prefix("default", &sid).expect("one of default's");
        assert_eq!(prefix, gone.sid_prefix());
        assert_eq!(owner_prefix("other", &sid), None);
        assert_eq!(owner_prefix("default", "RetainedX"), None);
        assert_eq!(owner_prefix("default", &format!("{prefix}lower")), None);
        let orphan = GrantOwner::orphan("default", prefix);
        let scope = OwnershipScope::new([&orphan]);
        assert_eq!(scope.owner_of(Some(&sid)), Some(&orphan));
        assert!(orphan.display_name().contains(prefix));
    }
}
