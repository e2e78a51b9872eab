//! The built-in policy: actions classified from the message, each with a
//! requirement on roles or scopes.

use std::sync::Arc;

use crate::pipeline::guard::{Access, Policy};
use crate::principal::{Principal, strings};
use crate::session::Inbound;

/// What a principal must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requirement {
    /// Anyone authenticated.
    Anyone,
    /// Nobody.
    Nobody,
    /// At least one of these roles.
    AnyRole(Vec<String>),
    /// All of these roles.
    AllRoles(Vec<String>),
    /// At least one of these scopes.
    AnyScope(Vec<String>),
    /// All of these scopes.
    AllScopes(Vec<String>),
    /// At least one of these requirements: a role of your own tokens, or
    /// the scope an identity provider grants ([`Requirement::or`]).
    AnyOf(Vec<Requirement>),
}

impl Requirement {
    /// At least one of `roles`.
    pub fn any_role<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Self {
        Requirement::AnyRole(strings(roles))
    }

    /// All of `roles`.
    pub fn all_roles<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Self {
        Requirement::AllRoles(strings(roles))
    }

    /// At least one of `scopes`.
    pub fn any_scope<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Requirement::AnyScope(strings(scopes))
    }

    /// All of `scopes`.
    pub fn all_scopes<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Requirement::AllScopes(strings(scopes))
    }

    /// This requirement, or `other`: `any_role(["admin"]).or(any_scope(["chat:admin"]))`
    /// lets your own admins and a provider's `chat:admin` tokens through.
    pub fn or(self, other: Requirement) -> Self {
        match self {
            Requirement::AnyOf(mut either) => {
                either.push(other);
                Requirement::AnyOf(either)
            }
            first => Requirement::AnyOf(vec![first, other]),
        }
    }

    /// Whether `principal` meets the requirement.
    pub fn is_met_by(&self, principal: &Principal) -> bool {
        match self {
            Requirement::Anyone => true,
            Requirement::Nobody => false,
            Requirement::AnyRole(roles) => roles.iter().any(|role| principal.has_role(role)),
            Requirement::AllRoles(roles) => roles.iter().all(|role| principal.has_role(role)),
            Requirement::AnyScope(scopes) => scopes.iter().any(|scope| principal.has_scope(scope)),
            Requirement::AllScopes(scopes) => scopes.iter().all(|scope| principal.has_scope(scope)),
            Requirement::AnyOf(either) => either
                .iter()
                .any(|requirement| requirement.is_met_by(principal)),
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Prefix(String),
}

impl Matcher {
    fn matches(&self, action: &str) -> bool {
        match self {
            Matcher::Exact(exact) => action == exact,
            Matcher::Prefix(prefix) => action.starts_with(prefix.as_str()),
        }
    }
}

/// Classifies a message into an action by a JSON field, then applies the
/// first rule that matches the action, else the fallback.
///
/// A message that is not a JSON object, or lacks the field, has the action
/// `""` and meets the fallback. The fallback defaults to
/// [`Requirement::Nobody`]: what no rule allows is denied.
#[derive(Debug, Clone)]
pub struct RolePolicy {
    // One Arc: the policy is cloned into every connection's pipeline and on
    // every message (tower's clone-and-call), so a clone must not allocate.
    rules: Arc<Rules>,
}

#[derive(Debug, Clone)]
struct Rules {
    field: &'static str,
    rules: Vec<(Matcher, Requirement)>,
    otherwise: Requirement,
}

impl RolePolicy {
    /// Actions are the JSON field `type`.
    pub fn by_type() -> Self {
        Self::by_field("type")
    }

    /// Actions are the JSON field `field` (for example `room` or
    /// `channel`).
    pub fn by_field(field: &'static str) -> Self {
        Self {
            rules: Arc::new(Rules {
                field,
                rules: Vec::new(),
                otherwise: Requirement::Nobody,
            }),
        }
    }

    fn rule(mut self, matcher: Matcher, requirement: Requirement) -> Self {
        Arc::make_mut(&mut self.rules)
            .rules
            .push((matcher, requirement));
        self
    }

    /// The action `action` needs `requirement`.
    pub fn exact(self, action: impl Into<String>, requirement: Requirement) -> Self {
        self.rule(Matcher::Exact(action.into()), requirement)
    }

    /// Actions starting with `prefix` need `requirement`.
    pub fn prefix(self, prefix: impl Into<String>, requirement: Requirement) -> Self {
        self.rule(Matcher::Prefix(prefix.into()), requirement)
    }

    /// Every other action needs `requirement`. Defaults to
    /// [`Requirement::Nobody`].
    pub fn otherwise(mut self, requirement: Requirement) -> Self {
        Arc::make_mut(&mut self.rules).otherwise = requirement;
        self
    }

    /// The requirement for `action`.
    pub fn requirement(&self, action: &str) -> &Requirement {
        self.rules
            .rules
            .iter()
            .find(|(matcher, _)| matcher.matches(action))
            .map_or(&self.rules.otherwise, |(_, requirement)| requirement)
    }
}

impl Policy for RolePolicy {
    fn check(&self, principal: &Principal, message: &Inbound) -> Access {
        let action = message.json_str(self.rules.field).unwrap_or("");
        if self.requirement(action).is_met_by(principal) {
            Access::Allow
        } else {
            Access::deny(action)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthMethod;

    #[test]
    fn either_a_role_or_a_scope() {
        let admins = Requirement::any_role(["admin"])
            .or(Requirement::any_scope(["chat:admin"]))
            .or(Requirement::all_scopes(["ops", "root"]));
        let held = |roles: &[&str], scopes: &[&str]| {
            let principal = Principal::new("p", AuthMethod::Token)
                .with_roles(roles.iter().copied())
                .with_scopes(scopes.iter().copied());
            admins.is_met_by(&principal)
        };
        assert!(held(&["admin"], &[]));
        assert!(held(&[], &["chat:admin"]));
        assert!(held(&[], &["ops", "root"]));
        assert!(!held(&["user"], &["chat", "ops"]));
        assert!(!held(&[], &[]));
        assert!(matches!(admins, Requirement::AnyOf(ref either) if either.len() == 3));
    }

    #[test]
    fn requirements_and_rules() {
        let user = Principal::new("alice", AuthMethod::Token)
            .with_roles(["user"])
            .with_scopes(["chat:read"]);
        let admin = Principal::new("root", AuthMethod::Token).with_roles(["user", "admin"]);
        let policy = RolePolicy::by_type()
            .exact("admin.stats", Requirement::Anyone)
            .prefix("admin.", Requirement::any_role(["admin"]))
            .exact("read", Requirement::any_scope(["chat:read", "chat:all"]))
            .exact("audit", Requirement::all_roles(["user", "admin"]))
            .otherwise(Requirement::any_role(["user"]));
        struct Case<'a> {
            action: &'static str,
            principal: &'a Principal,
            allowed: bool,
        }
        let (user, admin) = (&user, &admin);
        let cases = [
            Case {
                action: "say",
                principal: user,
                allowed: true,
            },
            Case {
                action: "admin.kick",
                principal: user,
                allowed: false,
            },
            Case {
                action: "admin.kick",
                principal: admin,
                allowed: true,
            },
            Case {
                action: "admin.stats",
                principal: user,
                allowed: true,
            },
            Case {
                action: "read",
                principal: user,
                allowed: true,
            },
            Case {
                action: "read",
                principal: admin,
                allowed: false,
            },
            Case {
                action: "audit",
                principal: user,
                allowed: false,
            },
            Case {
                action: "audit",
                principal: admin,
                allowed: true,
            },
            Case {
                action: "",
                principal: user,
                allowed: true,
            },
        ];
        for case in cases {
            let allowed = policy.requirement(case.action).is_met_by(case.principal);
            assert_eq!(
                allowed,
                case.allowed,
                "{} by {}",
                case.action,
                case.principal.subject()
            );
        }
        assert!(
            !RolePolicy::by_type()
                .requirement("anything")
                .is_met_by(admin),
            "deny by default"
        );
    }
}
