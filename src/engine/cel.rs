//! The CRDs' own CEL rules (the ones the API server runs), evaluated here so that the CLI refuses
//! what a cluster would. kube's `validate_cel` compiles every rule of the schema on each call (about
//! 2 ms per grant, most of `xacct apply`'s CPU time on a thousand grants); here each CRD's rules are
//! compiled once per thread (the compiled programs are not `Sync`) and reused.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use kube::CustomResourceExt;
use kube::core::cel::{CompiledSchema, ValidationErrors, Validator, compile_schema};
use serde::Serialize;

struct Rules {
    validator: Validator,
    compiled: CompiledSchema,
}

thread_local! {
    /// Compiled rules by CRD name.
    static RULES: RefCell<HashMap<String, Rc<Rules>>> = RefCell::new(HashMap::new());
}

/// Checks `object` against its CRD's CEL rules (what `validate_cel` does, without recompiling).
pub(super) fn validate<T: CustomResourceExt + Serialize>(
    object: &T,
) -> Result<(), ValidationErrors> {
    let rules = RULES.with(|cache| {
        cache
            .borrow_mut()
            .entry(T::crd_name().to_string())
            .or_insert_with(|| Rc::new(compile::<T>()))
            .clone()
    });
    // A resource that cannot be serialized cannot be checked; serde_json only fails on maps with
    // non-string keys, which the CRD types do not have.
    let value = serde_json::to_value(object).unwrap_or_default();
    rules
        .validator
        .validate_compiled(&rules.compiled, &value, None)
}

fn compile<T: CustomResourceExt>() -> Rules {
    let crd = T::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    Rules {
        validator: Validator::new(),
        compiled: compile_schema(&schema),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CrossAccountGrant;

    fn grant(spec: serde_json::Value) -> CrossAccountGrant {
        serde_json::from_value(
            serde_json::json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
            "metadata": {"name": "g", "namespace": "batch"}, "spec": spec}),
        )
        .expect("a grant")
    }

    #[test]
    fn cached_rules_judge_as_kube_does() {
        let cases = [
            serde_json::json!({"resource": {"account": "data", "kind": "S3Bucket", "name": "b"}, "grantee": {"accountId": "111111111111"}, "access": ["read"]}),
            serde_json::json!({"resource": {"account": "data", "kind": "IamRole", "name": "r"}, "grantee": {"accountId": "111111111111"}, "access": ["read"]}),
            serde_json::json!({"resource": {"account": "data", "kind": "S3Bucket", "name": "b"}, "grantee": {"accountId": "111111111111"}, "granteeSide": "Manage", "access": ["read"]}),
        ];
        let mut refused = 0;
        for spec in cases {
            let g = grant(spec);
            let ours = validate(&g).map_err(|e| e.to_string());
            let kubes = g.validate_cel().map_err(|e| e.to_string());
            assert_eq!(ours, kubes);
            refused += usize::from(ours.is_err());
            // And again, from the cache.
            assert_eq!(validate(&g).map_err(|e| e.to_string()), kubes);
        }
        assert_eq!(refused, 2, "the case set has both outcomes");
    }
}
