//! Property tests for compaction: whatever sequence of runs converges whichever grants (each run
//! knowing only the grants in its scope, as the controller and the CLI do), the policy allows
//! exactly the principals the live grants want for each shape of statement, foreign statements
//! stay as they were, and a converged policy needs no write for any grant.
//!
//! The expected access is computed from the generated wants, not from the crate's ownership code.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use serde_json::{Value, json};
use xacct::policy::{
    GrantOwner, OwnershipScope, PolicyDocument, SizeLimit, Statement, WriteDecision, converge,
};

const INSTANCE: &str = "default";
const GRANTS: usize = 5;
const SHAPES: [(&str, &str); 3] = [
    ("Objects", "s3:GetObject"),
    ("Bucket", "s3:ListBucket"),
    ("Tags", "s3:GetObjectTagging"),
];

fn owner(grant: usize) -> GrantOwner {
    GrantOwner::new(INSTANCE, "team", &format!("grant-{grant}"))
}

fn role(n: usize) -> String {
    format!("arn:aws:iam::111111111111:role/r{n}")
}

/// Principals grants pick from: two roles whose hashes in a shared Sid collide (found once), one
/// account written both ways, two more roles, and anyone (`*`: an organization's grant, or a public
/// one).
fn pool() -> &'static [String] {
    static POOL: OnceLock<Vec<String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (x, y) = colliding_roles();
        vec![
            role(x),
            role(y),
            "222222222222".into(),
            "arn:aws:iam::222222222222:root".into(),
            role(1_000_001),
            role(1_000_002),
            "*".into(),
        ]
    })
}

/// Two role ARNs whose 5-hex-digit principal tags (the first 5 hex digits of the SHA-256 of the
/// ARN followed by a zero byte, as the crate tags principals) are equal.
fn colliding_roles() -> (usize, usize) {
    use sha2::{Digest, Sha256};
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    (0..1_000_000)
        .find_map(|n| {
            let mut hasher = Sha256::new();
            hasher.update(role(n).as_bytes());
            hasher.update([0u8]);
            let tag: String = hasher.finalize()[..3]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            seen.insert(tag[..5].to_string(), n).map(|m| (m, n))
        })
        .expect("a collision among a million roles")
}

fn canonical(principal: &str) -> String {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        format!("arn:aws:iam::{principal}:root")
    } else {
        principal.to_string()
    }
}

/// What one grant wants: shape → principals (indexes into the pool).
type Wants = BTreeMap<usize, BTreeSet<usize>>;

fn wants() -> impl Strategy<Value = Wants> {
    btree_map(
        0..SHAPES.len(),
        btree_set(0..6usize, 1..4),
        0..=SHAPES.len(),
    )
}

/// One run: the grants in its scope, each wanting something (`Some`) or deleted (`None`).
type Run = BTreeMap<usize, Option<Wants>>;

fn run() -> impl Strategy<Value = Run> {
    btree_map(0..GRANTS, prop::option::weighted(0.8, wants()), 1..=GRANTS)
}

fn statements_for(grant: usize, wants: &Wants) -> Vec<Statement> {
    wants
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(&shape, ps)| {
            let (purpose, action) = SHAPES[shape];
            let principals: Vec<&str> = ps.iter().map(|&p| pool()[p].as_str()).collect();
            Statement::from_json(json!({"Sid": owner(grant).sid(purpose), "Effect": "Allow",
                "Principal": {"AWS": principals}, "Action": action, "Resource": "arn:aws:s3:::b/*"}))
            .expect("valid statement")
        })
        .collect()
}

fn foreign() -> Vec<Statement> {
    [
        json!({"Sid": "Console", "Effect": "Allow", "Principal": {"AWS": role(1_000_001)}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}),
        json!({"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::b"}),
    ]
    .into_iter()
    .map(|s| Statement::from_json(s).expect("valid statement"))
    .collect()
}

/// Who each shape of xacct's statements lets in (foreign statements excluded by Sid).
fn allowed(doc: &PolicyDocument) -> BTreeMap<usize, BTreeSet<String>> {
    let mut out: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for s in &doc.statements {
        let json = s.as_json();
        if !s.sid().is_some_and(|sid| sid.starts_with("Xacct")) {
            continue;
        }
        let action = json["Action"].as_str().expect("one action");
        let shape = SHAPES
            .iter()
            .position(|(_, a)| *a == action)
            .expect("a known shape");
        let principals = match &json["Principal"]["AWS"] {
            Value::String(p) => vec![p.clone()],
            Value::Array(ps) => ps
                .iter()
                .map(|p| p.as_str().expect("string").to_string())
                .collect(),
            other => panic!("unexpected principal {other}"),
        };
        out.entry(shape)
            .or_default()
            .extend(principals.iter().map(|p| canonical(p)));
    }
    out
}

fn expected(live: &BTreeMap<usize, Wants>) -> BTreeMap<usize, BTreeSet<String>> {
    let mut out: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for wants in live.values() {
        for (&shape, ps) in wants {
            if !ps.is_empty() {
                out.entry(shape)
                    .or_default()
                    .extend(ps.iter().map(|&p| canonical(&pool()[p])));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_sequence_of_partial_runs_allows_exactly_what_live_grants_want(runs in vec(run(), 1..8)) {
        let mut doc = PolicyDocument { statements: foreign(), ..PolicyDocument::new() };
        let mut live: BTreeMap<usize, Wants> = BTreeMap::new();
        for run in &runs {
            let owners: Vec<GrantOwner> = run.keys().map(|&g| owner(g)).collect();
            let desired: Vec<Statement> = run
                .iter()
                .flat_map(|(&g, w)| w.as_ref().map(|w| statements_for(g, w)).unwrap_or_default())
                .collect();
            let merged = converge(Some(&doc), INSTANCE, true, &OwnershipScope::new(&owners), &OwnershipScope::default(), &desired)
                .expect("converges");
            for (&g, w) in run {
                match w {
                    Some(w) => live.insert(g, w.clone()),
                    None => live.remove(&g),
                };
            }
            if merged.decision != WriteDecision::Unchanged {
                doc = merged.document;
            }
            prop_assert_eq!(allowed(&doc), expected(&live), "{}", doc.to_pretty_string());
            for f in foreign() {
                prop_assert!(doc.statements.contains(&f), "foreign statement lost: {}", doc.to_pretty_string());
            }
            // Statements are unique by Sid, as IAM requires.
            let sids: Vec<&str> = doc.statements.iter().filter_map(|s| s.sid()).collect();
            let unique: BTreeSet<&str> = sids.iter().copied().collect();
            prop_assert_eq!(sids.len(), unique.len(), "{}", doc.to_pretty_string());
        }
        // Converged: no live grant, alone or all together, needs a write.
        for (&g, w) in &live {
            let merged = converge(Some(&doc), INSTANCE, true, &OwnershipScope::new([&owner(g)]), &OwnershipScope::default(), &statements_for(g, w))
                .expect("converges");
            prop_assert_eq!(merged.decision, WriteDecision::Unchanged, "grant {} on {}", g, doc.to_pretty_string());
        }
    }

    #[test]
    fn compaction_never_makes_a_policy_larger(grants in btree_map(0..GRANTS, wants(), 1..=GRANTS)) {
        let owners: Vec<GrantOwner> = grants.keys().map(|&g| owner(g)).collect();
        let desired: Vec<Statement> = grants.iter().flat_map(|(&g, w)| statements_for(g, w)).collect();
        let merged = converge(None, INSTANCE, true, &OwnershipScope::new(&owners), &OwnershipScope::default(), &desired)
            .expect("converges");
        let plain = PolicyDocument { statements: desired, ..PolicyDocument::new() };
        let measure = |d: &PolicyDocument| SizeLimit::S3_BUCKET.measure(&d.to_compact_string());
        prop_assert!(measure(&merged.document) <= measure(&plain), "{}", merged.document.to_pretty_string());
    }
}
