//! The permissions an admin operation needs: the tenant's own templates
//! for it (`TenantSettings::admin_permissions`) or the built-in `ACM:`
//! ones ([`Operation::defaults`]), rendered for what the operation is
//! about. Changes ([`super::actor`]) and reads ([`super::read`]) both ask
//! [`authorize`].

use super::error::AdminError;
use super::view::ActorView;
use crate::model::ids::{GroupName, RoleName, Subject, UserId};
use crate::model::operation::{MappingError, Operation};
use crate::model::permission::{GrantPattern, validate_path};
use crate::model::template::Piece;
use crate::model::tenant::{Attributes, Tenant};

/// What an operation is about: the values its templates' placeholders take.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct On<'a> {
    pub(super) role: Option<&'a RoleName>,
    pub(super) group: Option<&'a GroupName>,
    pub(super) user: Option<&'a UserId>,
    /// The user's attributes (`{user.NAME}`): the member's, or, for a user
    /// being added, those given or the profile's.
    pub(super) attributes: Option<&'a Attributes>,
}

impl<'a> On<'a> {
    pub(super) fn role(role: &'a RoleName) -> Self {
        Self {
            role: Some(role),
            ..Self::default()
        }
    }
    pub(super) fn group(group: &'a GroupName) -> Self {
        Self {
            group: Some(group),
            ..Self::default()
        }
    }
    /// A member of `t` (its attributes from the tenant).
    pub(super) fn user(t: &'a Tenant, user: &'a UserId) -> Self {
        Self {
            user: Some(user),
            attributes: t.users.get(user).map(|u| u.attributes()),
            ..Self::default()
        }
    }
    /// A subject: a member or a group.
    pub(super) fn subject(t: &'a Tenant, subject: &'a Subject) -> Self {
        match subject {
            Subject::User(u) => Self::user(t, u),
            Subject::Group(g) => Self::group(g),
        }
    }
}

/// Whether `value` can stand as one segment of a permission.
fn is_segment(value: &str) -> bool {
    !value.contains(':') && validate_path(value).is_ok()
}

/// Requires the actor to be allowed every permission `op` maps to in `t`
/// (the tenant's own templates, or the built-in `ACM:` ones), rendered for
/// `on`. A template naming a `{user}` or `{group}` the change does not
/// have does not apply; a change none applies to is refused. A value that
/// is not a valid segment (a role name with a space) can only be covered
/// by a wildcard, so then the actor must hold the template's text up to
/// that placeholder followed by `*`.
pub(super) fn authorize(
    view: &ActorView,
    actor: &UserId,
    t: &Tenant,
    op: Operation,
    on: On<'_>,
) -> Result<(), AdminError> {
    let own = t.settings.admin_permissions.get(&op);
    let texts: Vec<&str> = match own {
        Some(texts) => texts.iter().map(String::as_str).collect(),
        None => op.defaults().to_vec(),
    };
    let mut applied = false;
    for text in texts {
        let template = op
            .template(text)
            .map_err(|error| AdminError::StoredMappingInvalid {
                tenant: t.id.clone(),
                error: MappingError::Template {
                    operation: op,
                    error,
                },
            })?;
        let lacks = |name: &str| match name {
            "role" => on.role.is_none(),
            "group" => on.group.is_none(),
            "tenant" => false,
            _ => on.user.is_none(),
        };
        if template.names().any(lacks) {
            continue;
        }
        applied = true;
        let mut permission = String::with_capacity(text.len() + 16);
        // The permission as a refusal names it: an attribute's value stays
        // its placeholder, so a refusal does not tell a user's attributes
        // to whoever is refused.
        let mut shown = String::with_capacity(text.len() + 16);
        let mut wildcard = false;
        for piece in template.pieces() {
            let (value, hidden) = match piece {
                Piece::Literal(text) => {
                    permission.push_str(text);
                    shown.push_str(text);
                    continue;
                }
                Piece::Var("tenant") => (t.id.as_str(), false),
                Piece::Var("role") => (on.role.map_or("", RoleName::as_str), false),
                Piece::Var("group") => (on.group.map_or("", GroupName::as_str), false),
                Piece::Var("user") => (on.user.map_or("", UserId::as_str), false),
                // A missing attribute is no segment: only a wildcard over
                // where it goes covers the user (nor does the answer tell
                // that the attribute is missing).
                Piece::Var(name) => {
                    let attribute = name.strip_prefix("user.").unwrap_or(name);
                    let value = on.attributes.and_then(|a| a.get(attribute));
                    (value.map_or("", String::as_str), true)
                }
            };
            if is_segment(value) {
                permission.push_str(value);
                if hidden {
                    shown.push('{');
                    shown.push_str(match piece {
                        Piece::Var(name) => name,
                        Piece::Literal(text) => text,
                    });
                    shown.push('}');
                } else {
                    shown.push_str(value);
                }
            } else {
                permission.push('*');
                shown.push('*');
                wildcard = true;
                break;
            }
        }
        let ok = if wildcard {
            GrantPattern::parse(&permission).is_ok_and(|p| view.holds(&p, actor.as_str()))
        } else {
            validate_path(&permission).is_ok() && view.allows(&permission, actor.as_str())
        };
        if !ok {
            return Err(AdminError::MissingPermission {
                actor: actor.clone(),
                permission: shown,
                tenant: t.id.clone(),
            });
        }
    }
    if applied {
        Ok(())
    } else {
        Err(AdminError::NoApplicableTemplate {
            operation: op,
            tenant: t.id.clone(),
        })
    }
}
