//! Quotas some services put on a policy besides its size. SQS counts statements, principals and
//! actions per statement (Amazon SQS policy quotas: 20, 50 and 7).
//!
//! Only what the documentation states without doubt is checked: principals are counted once each
//! however many statements name them (the lenient reading), and SQS's quota of 10 conditions is
//! not checked (the documentation does not say whether it counts per statement or per policy). A
//! policy AWS refuses anyway fails as any refused write does.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::document::PolicyDocument;

/// What a count quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Statements in the policy.
    Statements,
    /// Distinct principals named in `Principal` or `NotPrincipal` across the policy.
    Principals,
    /// Actions named in `Action` or `NotAction` of one statement.
    ActionsInOneStatement,
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Counted::Statements => "statements",
            Counted::Principals => "principals",
            Counted::ActionsInOneStatement => "actions in one statement",
        })
    }
}

/// A service's count quotas on one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountQuotas {
    /// Most statements.
    pub statements: usize,
    /// Most distinct principals.
    pub principals: usize,
    /// Most actions in one statement.
    pub actions_per_statement: usize,
}

/// A count over its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// What was counted.
    pub counted: Counted,
    /// How many the policy has.
    pub count: usize,
    /// The quota.
    pub limit: usize,
}

impl CountQuotas {
    /// SQS queue policies.
    pub const SQS_QUEUE: CountQuotas = CountQuotas {
        statements: 20,
        principals: 50,
        actions_per_statement: 7,
    };

    /// The first count of `document` over its quota, if any.
    pub fn exceeded(&self, document: &PolicyDocument) -> Option<OverQuota> {
        let statements = &document.statements;
        let mut principals = BTreeSet::new();
        let mut most_actions = 0;
        for statement in statements {
            let json = statement.as_json();
            for member in ["Principal", "NotPrincipal"] {
                principals.extend(json.get(member).into_iter().flat_map(principal_names));
            }
            let actions: usize = ["Action", "NotAction"]
                .iter()
                .filter_map(|m| json.get(*m))
                .map(|v| strings(v).count())
                .sum();
            most_actions = most_actions.max(actions);
        }
        [
            (Counted::Statements, statements.len(), self.statements),
            (Counted::Principals, principals.len(), self.principals),
            (
                Counted::ActionsInOneStatement,
                most_actions,
                self.actions_per_statement,
            ),
        ]
        .into_iter()
        .find(|(_, count, limit)| count > limit)
        .map(|(counted, count, limit)| OverQuota {
            counted,
            count,
            limit,
        })
    }
}

/// Each principal a `Principal` value names, with its type (`"*"`, or `AWS:arn`, `Service:name`...).
fn principal_names(value: &Value) -> Vec<String> {
    match value {
        Value::Object(by_type) => by_type
            .iter()
            .flat_map(|(kind, names)| strings(names).map(move |n| format!("{kind}:{n}")))
            .collect(),
        other => strings(other).map(str::to_string).collect(),
    }
}

/// The strings of a value that is a string or a list of them.
fn strings(value: &Value) -> impl Iterator<Item = &str> {
    let list = match value {
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    list.iter().filter_map(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document(statements: Vec<Value>) -> PolicyDocument {
        PolicyDocument::from_json(json!({"Version": "2012-10-17", "Statement": statements}))
            .expect("a policy")
    }

    fn statement(i: usize, principals: Value, actions: Value) -> Value {
        json!({"Sid": format!("S{i}"), "Effect": "Allow", "Principal": principals,
               "Action": actions, "Resource": "arn:aws:sqs:us-east-1:111111111111:jobs"})
    }

    fn account(i: usize) -> String {
        format!("arn:aws:iam::{:012}:root", 200_000_000_000usize + i)
    }

    #[test]
    fn twenty_statements_fit_and_twenty_one_do_not() {
        let statements = |n: usize| {
            (0..n)
                .map(|i| statement(i, json!({"AWS": account(i)}), json!("sqs:SendMessage")))
                .collect()
        };
        let quotas = CountQuotas::SQS_QUEUE;
        assert_eq!(quotas.exceeded(&document(statements(20))), None);
        assert_eq!(
            quotas.exceeded(&document(statements(21))),
            Some(OverQuota {
                counted: Counted::Statements,
                count: 21,
                limit: 20
            })
        );
    }

    #[test]
    fn principals_are_counted_once_across_statements_with_their_type() {
        let names: Vec<String> = (0..50).map(account).collect();
        let fifty = document(vec![
            statement(0, json!({"AWS": names}), json!("sqs:SendMessage")),
            // The same principals again, and one by another type and one as "*": 52 in all.
            statement(1, json!({"AWS": names}), json!("sqs:ReceiveMessage")),
        ]);
        assert_eq!(CountQuotas::SQS_QUEUE.exceeded(&fifty), None);
        let more = document(vec![
            statement(0, json!({"AWS": names}), json!("sqs:SendMessage")),
            statement(
                1,
                json!({"Service": "sns.amazonaws.com"}),
                json!("sqs:SendMessage"),
            ),
            statement(2, json!("*"), json!("sqs:GetQueueUrl")),
        ]);
        assert_eq!(
            CountQuotas::SQS_QUEUE.exceeded(&more),
            Some(OverQuota {
                counted: Counted::Principals,
                count: 52,
                limit: 50
            })
        );
    }

    #[test]
    fn seven_actions_fit_in_one_statement_and_eight_do_not() {
        let actions = |n: usize| -> Vec<String> { (0..n).map(|i| format!("sqs:A{i}")).collect() };
        let seven = document(vec![statement(
            0,
            json!({"AWS": account(0)}),
            json!(actions(7)),
        )]);
        assert_eq!(CountQuotas::SQS_QUEUE.exceeded(&seven), None);
        // Eight in one statement; spread over two statements they would fit.
        let eight = document(vec![
            statement(0, json!({"AWS": account(0)}), json!(actions(3))),
            statement(1, json!({"AWS": account(1)}), json!(actions(8))),
        ]);
        assert_eq!(
            CountQuotas::SQS_QUEUE.exceeded(&eight),
            Some(OverQuota {
                counted: Counted::ActionsInOneStatement,
                count: 8,
                limit: 7
            })
        );
    }
}
