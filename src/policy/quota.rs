//! Quotas some services put on a policy besides its size. SQS counts statements, principals and
//! actions per statement (Amazon SQS policy quotas: 20, 50 and 7).
//!
//! Only what the documentation states without doubt is checked: principals are counted once each
//! however many statements name them and however they are spelled (the lenient reading), and
//! SQS's quota of 10 conditions is not checked (the documentation does not say whether it counts per statement or per policy). A
//! policy AWS refuses anyway fails as any refused write does.

use std::collections::BTreeSet;
use std::fmt;

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

    /// The first count of `document` over its quota, if any. Principals and actions are counted
    /// by meaning (`"*"` and `{"AWS": "*"}`, an account id and its root ARN, an action in any case
    /// are one each); a statement that cannot be read counts as a statement only.
    pub fn exceeded(&self, document: &PolicyDocument) -> Option<OverQuota> {
        let statements = &document.statements;
        let mut principals: BTreeSet<(String, String)> = BTreeSet::new();
        let mut most_actions = 0;
        for statement in statements.iter().filter_map(|s| s.canonical().ok()) {
            for set in [statement.principal, statement.not_principal]
                .into_iter()
                .flatten()
            {
                for (kind, names) in set {
                    principals.extend(names.into_iter().map(|n| (kind.clone(), n)));
                }
            }
            let actions = [statement.action, statement.not_action]
                .into_iter()
                .flatten()
                .map(|a| a.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
    fn principals_are_counted_once_by_meaning_across_statements_with_their_type() {
        let names: Vec<String> = (0..50).map(account).collect();
        // The same principals in two statements, by ARN, then by account id.
        let ids: Vec<String> = (0..50)
            .map(|i| format!("{}", 200_000_000_000usize + i))
            .collect();
        let fifty = document(vec![
            statement(0, json!({"AWS": names}), json!("sqs:SendMessage")),
            statement(1, json!({"AWS": ids}), json!("sqs:ReceiveMessage")),
        ]);
        assert_eq!(CountQuotas::SQS_QUEUE.exceeded(&fifty), None);
        // One more by another type and one as "*": 52 in all.
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
        // An action named again in another case is the same action.
        let mut again = actions(7);
        again.push("SQS:a0".into());
        let still_seven = document(vec![statement(0, json!({"AWS": account(0)}), json!(again))]);
        assert_eq!(CountQuotas::SQS_QUEUE.exceeded(&still_seven), None);
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
