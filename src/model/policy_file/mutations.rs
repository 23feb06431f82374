//! A loaded state as the operator mutations that rebuild it
//! ([`to_mutations`]), to bootstrap an empty store from a policy file.

use crate::model::catalog::Catalog;
use crate::model::mutation::Mutation;
use crate::model::state::State;

/// The mutations that build `state` from an empty one, in an order that
/// applies cleanly: the catalog and bridge grants, then per tenant its roles
/// and grants, users, groups, members and bindings. Used to bootstrap an
/// empty store from a policy file, so the changelog holds it all.
pub fn to_mutations(state: &State) -> Vec<Mutation> {
    let mut out = Vec::new();
    for entry in state.catalog.entries() {
        let builtin_unchanged = entry.builtin
            && Catalog::with_builtins()
                .get(entry.pattern.as_str())
                .is_some_and(|b| b == entry);
        if !builtin_unchanged {
            let mut entry = entry.clone();
            entry.builtin = false;
            out.push(Mutation::DefineCatalogEntry { entry });
        }
    }
    if !state.bridges_grants.is_empty() {
        out.push(Mutation::SetBridgesGrants {
            grants: state.bridges_grants.to_vec(),
        });
    }
    for t in state.tenants.values() {
        out.push(Mutation::CreateTenant {
            tenant: t.id.clone(),
            name: t.name.clone(),
            settings: t.settings.clone(),
        });
        for role in t.roles.values() {
            if !role.name.is_system() {
                out.push(Mutation::CreateRole {
                    tenant: t.id.clone(),
                    role: role.name.clone(),
                    description: role.description.clone(),
                });
            } else if !role.description.is_empty() {
                // A system role comes with the tenant, described by no one;
                // a policy file may describe `Users`.
                out.push(Mutation::UpdateRoleDescription {
                    tenant: t.id.clone(),
                    role: role.name.clone(),
                    description: role.description.clone(),
                });
            }
            if !role.grants.is_empty() {
                out.push(Mutation::SetGrants {
                    tenant: t.id.clone(),
                    role: role.name.clone(),
                    grants: role.grants.clone(),
                });
            }
        }
        for u in t.users.values() {
            out.push(Mutation::AddUser {
                tenant: t.id.clone(),
                user: u.id.clone(),
                email: u.email().map(str::to_owned),
                display_name: u.display_name().map(str::to_owned),
                status: u.status,
                aliases: u.aliases().iter().cloned().collect(),
                attributes: u.attributes().clone(),
            });
        }
        for g in t.groups.values() {
            out.push(Mutation::CreateGroup {
                tenant: t.id.clone(),
                group: g.name.clone(),
                description: g.description.clone(),
            });
        }
        for g in t.groups.values() {
            for m in &g.members {
                out.push(Mutation::AddMember {
                    tenant: t.id.clone(),
                    group: g.name.clone(),
                    member: m.clone(),
                });
            }
        }
        for b in t.bindings.values() {
            out.push(Mutation::Assign {
                tenant: t.id.clone(),
                subject: b.subject.clone(),
                role: b.role.clone(),
                expires: b.expires,
            });
        }
    }
    out
}
