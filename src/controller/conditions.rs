//! Status conditions in the standard `metav1.Condition` shape: `lastTransitionTime` changes only
//! when the status flips, every condition carries `observedGeneration`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::Condition;
use crate::engine::{ConditionReport, Reason};

/// Condition types.
pub const READY: &str = "Ready";
/// Set once drift was seen.
pub const DRIFTED: &str = "Drifted";

/// A condition to set (the timestamps are filled in by [`merge_condition`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// Type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
}

impl ConditionUpdate {
    /// A Ready condition.
    pub fn ready(status: &'static str, reason: impl Into<String>, message: String) -> Self {
        ConditionUpdate {
            type_: READY,
            status,
            reason: reason.into(),
            message,
        }
    }

    /// The Ready condition the engine reported (`Unknown` when none came).
    pub fn reported(condition: Option<&ConditionReport>) -> Self {
        match condition {
            Some(c) => Self::ready(c.status, c.reason.as_str(), c.message.clone()),
            None => Self::ready("Unknown", Reason::Unknown.as_str(), "no result".into()),
        }
    }
}

/// `existing` with `update` set: the transition time is kept when the status did not change.
pub fn merge_condition(
    existing: &[Condition],
    update: ConditionUpdate,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let previous = existing.iter().find(|c| c.type_ == update.type_);
    let last_transition_time = match previous {
        Some(p) if p.status == update.status => p.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: update.type_.to_string(),
        status: update.status.to_string(),
        reason: update.reason,
        message: truncate(&update.message, 32 * 1024),
        observed_generation: generation,
        last_transition_time,
    };
    let mut out: Vec<Condition> = existing
        .iter()
        .filter(|c| c.type_ != update.type_)
        .cloned()
        .collect();
    out.push(condition);
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the `Ready` condition is `True`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find(conditions, READY).is_some_and(|c| c.status == "True")
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("valid timestamp")
    }

    fn update(status: &'static str, reason: &str) -> ConditionUpdate {
        ConditionUpdate {
            type_: READY,
            status,
            reason: reason.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn transition_time_changes_only_when_the_status_flips() {
        let first = merge_condition(&[], update("False", "Pending"), Some(1), at(100));
        assert_eq!(first[0].last_transition_time, Time(at(100)));
        let same_status =
            merge_condition(&first, update("False", "AccessDenied"), Some(2), at(200));
        assert_eq!(same_status[0].last_transition_time, Time(at(100)));
        assert_eq!(same_status[0].reason, "AccessDenied");
        assert_eq!(same_status[0].observed_generation, Some(2));
        let flipped = merge_condition(&same_status, update("True", "Applied"), Some(2), at(300));
        assert_eq!(flipped[0].last_transition_time, Time(at(300)));
        assert!(is_ready(&flipped));
    }

    #[test]
    fn other_conditions_are_kept() {
        let drifted = ConditionUpdate {
            type_: DRIFTED,
            status: "True",
            reason: "DriftDetected".into(),
            message: "x".into(),
        };
        let both = merge_condition(
            &merge_condition(&[], drifted, None, at(1)),
            update("True", "Applied"),
            None,
            at(2),
        );
        assert_eq!(
            both.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            vec![DRIFTED, READY]
        );
    }
}
