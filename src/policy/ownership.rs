//! Statement ownership through Sid markers.
//!
//! A statement xacct writes has the Sid `Xacct` + 6 hex digits naming the instance + 16 hex digits
//! naming the grant (a hash of instance, namespace and name) + a purpose word starting with a
//! capital letter, e.g. `Xacct3f9a1c0b1c2d3e4f5a6b7c8Objects`. Only letters and digits: IAM refuses
//! other characters in a Sid. The fixed-width lower-case tags make the grant part unambiguous, so a
//! statement belongs to exactly one grant, and every other Sid (or none) is someone else's.
//!
//! Where a grant is named many times over (the entries of shared statements, see `compact`), it is
//! named by its **id**: the instance's `Xacct` + 6 hex digits, then 7 letters and digits (base 62)
//! derived from its 16 hex digits. Every owned Sid, whatever its form, resolves to its grant's id,
//! and ownership is decided by id.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Every Sid xacct writes starts with this.
pub const SID_PREFIX: &str = "Xacct";
const INSTANCE_TAG_LEN: usize = 6;
/// Hex digits naming a grant in a Sid.
pub(super) const GRANT_TAG_LEN: usize = 16;
/// Base-62 digits naming a grant in its id (41.7 bits: two grants of one instance on one policy
/// share them with a chance of about 10⁻⁸ at 300 grants).
pub(super) const SHORT_TAG_LEN: usize = 7;
/// What follows a grant's id in the Sid of its part of a shared statement, before the shape's tag
/// (a Sid that lives between the expansion and the compaction of a policy, and is written as it is
/// with `--no-compaction`).
pub(super) const SHAPE_MARK: &str = "Shared";
/// Hex digits naming a statement's shape.
pub(super) const SHAPE_TAG_LEN: usize = 6;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Identifies the grant (of one xacct instance) that owns statements.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantOwner {
    /// The xacct instance id (several installations may share accounts).
    pub instance: String,
    /// The grant's namespace.
    pub namespace: String,
    /// The grant's name.
    pub name: String,
    /// The Sid prefix of its statements (its id for a grant known only by its id).
    prefix: String,
    /// Its id: the instance's Sid prefix and the grant's short tag.
    id: String,
}

impl GrantOwner {
    /// The owner of a grant's statements.
    pub fn new(instance: &str, namespace: &str, name: &str) -> Self {
        let grant = hex_digest(&[instance, namespace, name]);
        let instance_prefix = instance_sid_prefix(instance);
        let tag = &grant[..GRANT_TAG_LEN];
        GrantOwner {
            instance: instance.into(),
            namespace: namespace.into(),
            name: name.into(),
            prefix: format!("{instance_prefix}{tag}"),
            id: format!("{instance_prefix}{}", short_tag(tag)),
        }
    }

    /// A grant of `instance` known only by its id (see [`owner_id`]): one that no longer exists
    /// (its name cannot be recovered from the hash). It is only ever revoked: it writes no
    /// statement.
    pub fn orphan(instance: &str, id: &str) -> Self {
        GrantOwner {
            instance: instance.into(),
            namespace: String::new(),
            name: id.into(),
            prefix: id.into(),
            id: id.into(),
        }
    }

    /// The Sid prefix shared by all of this grant's own statements.
    pub fn sid_prefix(&self) -> String {
        self.prefix.clone()
    }

    /// Its id: what names it in shared statements, and what every Sid it owns resolves to.
    pub fn id(&self) -> &str {
        &self.id
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
        owner_id(sid).is_some_and(|id| id == self.id)
    }

    /// `namespace/name`, for people.
    pub fn display_name(&self) -> String {
        if self.namespace.is_empty() {
            format!("(a deleted grant, id {})", self.name)
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// The id of the grant that owns the statement `sid` on its own (a grant's own statement, or its
/// part of a shared statement named by shape); `None` for a shared statement and for anyone
/// else's.
pub(super) fn owner_id(sid: &str) -> Option<String> {
    let rest = sid.strip_prefix(SID_PREFIX)?;
    let instance = rest.get(..INSTANCE_TAG_LEN).filter(|t| lower_hex(t))?;
    let grant = &rest[INSTANCE_TAG_LEN..];
    if let Some(tag) = grant.get(..GRANT_TAG_LEN).filter(|t| lower_hex(t))
        && is_purpose(&grant[GRANT_TAG_LEN..])
    {
        return Some(format!("{SID_PREFIX}{instance}{}", short_tag(tag)));
    }
    let (short, shape) = (grant.get(..SHORT_TAG_LEN)?, &grant[SHORT_TAG_LEN..]);
    let shape = shape.strip_prefix(SHAPE_MARK)?;
    (short.bytes().all(|b| b.is_ascii_alphanumeric())
        && shape.len() == SHAPE_TAG_LEN
        && lower_hex(shape))
    .then(|| format!("{SID_PREFIX}{instance}{short}"))
}

/// The id of the grant of `instance` that owns `sid` on its own (see [`owner_id`]).
pub(super) fn owner_id_of(instance: &str, sid: &str) -> Option<String> {
    owner_id(sid).filter(|id| id.starts_with(&instance_sid_prefix(instance)))
}

/// The Sid of the part of a shared statement of `shape_tag` that the grant `id` holds, once the
/// statement is split up per grant.
pub(super) fn shape_sid(id: &str, shape_tag: &str) -> String {
    format!("{id}{SHAPE_MARK}{shape_tag}")
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
    by_id: BTreeMap<String, GrantOwner>,
}

impl OwnershipScope {
    /// A scope of the given grants.
    pub fn new<'a>(owners: impl IntoIterator<Item = &'a GrantOwner>) -> Self {
        OwnershipScope {
            by_id: owners
                .into_iter()
                .map(|o| (o.id.clone(), o.clone()))
                .collect(),
        }
    }

    /// The grant in scope that owns the statement with this Sid, if any.
    pub fn owner_of(&self, sid: Option<&str>) -> Option<&GrantOwner> {
        self.by_id.get(&owner_id(sid?)?)
    }

    /// Both scopes' grants.
    pub fn with(&self, other: &OwnershipScope) -> OwnershipScope {
        let mut by_id = self.by_id.clone();
        by_id.extend(other.by_id.clone());
        OwnershipScope { by_id }
    }

    /// Whether no grant is in scope.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Whether the grant with this id is in scope.
    pub fn contains_id(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }
}

fn is_purpose(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

pub(super) fn lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The 7 base-62 digits of a grant's id, from the 16 hex digits that name it in its own Sids.
pub(super) fn short_tag(hex: &str) -> String {
    base62(
        u64::from_str_radix(hex, 16).unwrap_or_default(),
        SHORT_TAG_LEN,
    )
}

/// `value` modulo 62^`digits`, in exactly `digits` base-62 digits.
pub(super) fn base62(mut value: u64, digits: usize) -> String {
    let mut out = vec![b'0'; digits];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out.into_iter().map(char::from).collect()
}

/// The SHA-256 of the parts, each followed by a separator, as lower-case hex digits.
pub fn hex_digest(parts: &[&str]) -> String {
    digest(parts).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the parts, each followed by a separator that cannot appear in names (so that
/// ("a-b","c") and ("a","b-c") differ).
pub(super) fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.finalize().into()
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
    fn an_orphan_is_known_by_its_id_alone() {
        let gone = GrantOwner::new("default", "batch", "gone");
        let sid = gone.sid("Objects");
        let id = owner_id_of("default", &sid).expect("one of default's");
        assert_eq!(id, gone.id());
        assert_eq!(owner_id_of("other", &sid), None);
        assert_eq!(owner_id("RetainedX"), None);
        assert_eq!(owner_id(&format!("{}lower", gone.sid_prefix())), None);
        let orphan = GrantOwner::orphan("default", &id);
        let scope = OwnershipScope::new([&orphan]);
        assert_eq!(scope.owner_of(Some(&sid)), Some(&orphan));
        assert!(orphan.display_name().contains(&id));
    }

    #[test]
    fn ids_are_the_instance_prefix_and_seven_base62_digits() {
        let owner = GrantOwner::new("default", "batch", "reads-lake");
        let id = owner.id();
        let instance = instance_sid_prefix("default");
        assert!(id.starts_with(&instance), "{id}");
        assert_eq!(id.len(), instance.len() + SHORT_TAG_LEN);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        // The same grant's id is the same from any of its Sids, and no other grant's.
        assert_eq!(owner_id(&owner.sid("Bucket")).as_deref(), Some(id));
        assert_eq!(owner_id(&owner.sid("Repository")).as_deref(), Some(id));
        assert_ne!(GrantOwner::new("default", "batch", "reads-lakes").id(), id);
        assert_eq!(base62(0, 3), "000");
        assert_eq!(base62(61, 2), "0z");
        assert_eq!(base62(62 * 62, 2), "00", "modulo 62^digits");
    }

    #[test]
    fn a_grants_part_of_a_shared_statement_is_owned_by_its_id() {
        let owner = GrantOwner::new("default", "batch", "reads-lake");
        let part = shape_sid(owner.id(), "0a1b2c");
        assert_eq!(owner_id(&part).as_deref(), Some(owner.id()));
        assert!(owner.owns(&part));
        let scope = OwnershipScope::new([&owner]);
        assert_eq!(scope.owner_of(Some(&part)), Some(&owner));
        // Only whole: a shape tag too short or long, or not hex, is someone else's.
        for other in [
            shape_sid(owner.id(), "0a1b2"),
            shape_sid(owner.id(), "0a1b2c3"),
            shape_sid(owner.id(), "0A1B2C"),
            format!("{}Shares0a1b2c", owner.id()),
        ] {
            assert_eq!(owner_id(&other), None, "{other}");
        }
    }
}
