//! The capacity table in BENCHMARKS.md (how many single-principal grants fit on one bucket,
//! repository, key and trust policy) is what the code computes today: the table is recomputed
//! from the engine's statement builder, merge and size measure (no AWS) and must appear in
//! BENCHMARKS.md as it is; the engine's own plan agrees on where the boundary is; the compacted
//! capacity meets the project's goals, with the guarantees revocation has on any policy.

#[path = "../benches/converge/capacity.rs"]
mod capacity;

#[test]
fn benchmarks_md_states_the_current_capacity() {
    let table = capacity::table();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md"))
        .expect("BENCHMARKS.md at the repository root");
    assert!(
        doc.contains(&table),
        "BENCHMARKS.md's capacity table is out of date; it should read:\n\n{table}"
    );
}

#[tokio::test]
async fn the_engine_plan_leaves_out_exactly_the_grants_beyond_the_capacity() {
    // The smallest row keeps this fast (the plan validates every grant's CEL rules); the benchmark
    // checks every row the same way.
    let row = capacity::ROWS
        .iter()
        .min_by_key(|row| capacity::capacity(row, capacity::Layout::StatementsPerGrant).grants)
        .expect("rows");
    for layout in capacity::LAYOUTS {
        let c = capacity::capacity(row, *layout);
        assert!(c.size <= c.limit && c.size + c.per_grant > c.limit, "{c:?}");
        assert_eq!(
            capacity::left_out_by_engine(row, *layout, c.grants).await,
            0
        );
        assert_eq!(
            capacity::left_out_by_engine(row, *layout, c.grants + 1).await,
            1
        );
    }
}

/// The goals: single-principal grants (42-character role ARNs) on one policy at the default quota.
const GOALS: &[(&str, usize)] = &[
    ("S3 bucket policy", 300),
    ("ECR repository policy", 180),
    ("IAM role trust policy (default quota)", 30),
];

fn row(policy: &str) -> &'static capacity::Row {
    capacity::ROWS
        .iter()
        .find(|r| r.policy == policy)
        .expect("a row of the table")
}

#[test]
fn the_compacted_capacity_meets_the_goals() {
    for (policy, goal) in GOALS {
        let c = capacity::capacity(row(policy), capacity::Layout::Compacted);
        assert!(
            c.grants >= *goal,
            "{policy}: {} grants fit, the goal is {goal}",
            c.grants
        );
    }
}

#[test]
fn at_capacity_revoking_one_grant_takes_out_its_principal_alone() {
    for (policy, _) in GOALS {
        let row = row(policy);
        let c = capacity::capacity(row, capacity::Layout::Compacted);
        let (full, revoked, principals) =
            capacity::revoke_first(row, capacity::Layout::Compacted, c.grants);
        let named = |doc: &xacct::policy::PolicyDocument| -> Vec<bool> {
            let text = doc.to_compact_string();
            principals
                .iter()
                .map(|p| text.contains(&format!("\"{p}\"")))
                .collect()
        };
        assert!(
            named(&full).iter().all(|n| *n),
            "{policy}: every principal at capacity"
        );
        let after = named(&revoked);
        assert!(!after[0], "{policy}: the revoked grant's principal is gone");
        assert!(
            after[1..].iter().all(|n| *n),
            "{policy}: every other principal stays"
        );
        let shrunk = row.limit().measure(&full.to_compact_string())
            - row.limit().measure(&revoked.to_compact_string());
        assert_eq!(
            shrunk, c.per_grant,
            "{policy}: the revocation frees one grant's size"
        );
    }
}
