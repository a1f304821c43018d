//! The capacity table in BENCHMARKS.md (how many single-principal grants fit on one bucket,
//! repository, key and trust policy) is what the code computes today: the table is recomputed
//! from the engine's statement builder, merge and size measure (no AWS) and must appear in
//! BENCHMARKS.md as it is; the engine's own plan agrees on where the boundary is.

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
