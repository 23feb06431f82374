//! Every request message of the gRPC services, as the bytes a client
//! sends: the first byte picks the message (`HANDLERS`, in order), the rest
//! is decoded with prost and, when it decodes, handed to what faces it on
//! the server, in process, over the quickstart policy:
//!
//! - Authorization: the service itself (`check`, `batch_check`, the
//!   listings). A Check must answer what `policy::reference` decides, or
//!   the error of the field or of the check.
//! - Admin: the request's conversion into a `Mutation`, then the service
//!   with `dry_run` set, which validates it against the compiled snapshot
//!   and changes nothing. The answer must be the conversion's
//!   `INVALID_ARGUMENT`, or what the rules (`model::rules::validate`)
//!   decide over the plain state. Reads go through the service too.
//! - Replication: Watch's tenant filter; an Import chunk's bytes into the
//!   export reader (the export_import target goes deeper).
//! - Envoy's `envoy.service.auth.v3.Authorization/Check`: the ext_authz
//!   service with deploy/envoy's mapping.
//!
//! Nothing a request does may panic, and the engine's revision never moves.

#![no_main]

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest as EnvoyCheckRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization as EnvoyAuthorization;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use rampart::engine::Engine;
use rampart::model::rules::validate;
use rampart::model::{Mutation, State, Timestamp, policy_file};
use rampart::policy::{self, reference};
use rampart::proto::{self, admin_server::Admin, authorization_server::Authorization};
use rampart::replication::convert::WatchTenants;
use rampart::replication::export::Reader;
use rampart::server::admin::AdminService;
use rampart::server::convert::{self, FieldError};
use rampart::server::ext_authz::{ExtAuthzConfig, ExtAuthzService, Mapping};
use rampart::server::{AuthorizationService, DataPlaneConfig};
use tonic::{Code, Request, Status};

/// The services under test, over one engine that no request changes.
struct Services {
    runtime: tokio::runtime::Runtime,
    state: Arc<State>,
    engine: Arc<Engine>,
    authorization: AuthorizationService,
    admin: AdminService,
    envoy: ExtAuthzService,
}

impl Services {
    fn new() -> Self {
        let state = policy_file::load_str(rampart::model::QUICKSTART_POLICY).unwrap();
        let engine = Arc::new(Engine::new(state));
        let config = DataPlaneConfig {
            // `at_least_revision` of a revision that never comes: answered
            // UNAVAILABLE at once, not after 100 ms.
            consistency_wait: Duration::ZERO,
            ..DataPlaneConfig::default()
        };
        let authorization = AuthorizationService::new(Arc::clone(&engine), config);
        let file: toml::Table =
            toml::from_str(include_str!("../../deploy/envoy/rampart.toml")).unwrap();
        let mapping: ExtAuthzConfig = file["ext_authz"].clone().try_into().unwrap();
        let envoy = ExtAuthzService::new(
            authorization.clone(),
            Some(Arc::new(Mapping::build(&mapping).unwrap())),
        );
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap(),
            state: Arc::clone(engine.load().state()),
            admin: AdminService::new(Arc::clone(&engine)),
            engine,
            authorization,
            envoy,
        }
    }

    fn run<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// A dry-run change's answer against the conversion and the rules over
    /// the plain state.
    fn judge_change(
        &self,
        converted: Result<Mutation, FieldError>,
        actor: &str,
        answer: Result<proto::MutationResponse, Status>,
    ) {
        let m = match converted {
            Err(e) => return same_error(&answer, Code::InvalidArgument, &e.to_string()),
            Ok(m) => m,
        };
        let actor = match convert::admin::actor(actor) {
            Err(e) => return same_error(&answer, Code::InvalidArgument, &e.to_string()),
            Ok(actor) => actor,
        };
        let now = Timestamp::now();
        // A binding that expires within a minute of now may be judged on
        // either side of its expiry by the service and here.
        if let Mutation::Assign {
            expires: Some(t), ..
        } = &m
            && t.unix().abs_diff(now.unix()) < 60
        {
            return;
        }
        let state: &State = &self.state;
        match validate(state, state, &actor, &m, now) {
            Ok(_) => match &answer {
                Ok(r) => assert!(r.dry_run, "a dry run answered as a write"),
                Err(s) => panic!("the rules allow {m:?}, the service refused: {s:?}"),
            },
            Err(e) => {
                let want = proto::status(&e);
                same_error(&answer, want.code(), want.message());
            }
        }
    }
}

fn same_error<T: std::fmt::Debug>(answer: &Result<T, Status>, code: Code, message: &str) {
    match answer {
        Err(s) => {
            assert_eq!(s.code(), code, "{s:?}");
            assert_eq!(s.message(), message);
        }
        Ok(r) => panic!("answered {r:?}; expected {code:?} {message}"),
    }
}

fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        // The seeds (examples/make_seeds.rs) pick messages by this list.
        let names: Vec<&str> = HANDLERS.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            rampart_fuzz::GRPC_MESSAGES,
            "HANDLERS and GRPC_MESSAGES differ"
        );
        Services::new()
    })
}

/// Whether `consistency` asks for a revision the engine does not have.
fn wants_newer(s: &Services, consistency: Option<&proto::Consistency>) -> bool {
    use proto::consistency::Requirement;
    matches!(
        consistency.and_then(|c| c.requirement.as_ref()),
        Some(Requirement::AtLeastRevision(n)) if *n > s.engine.load().revision()
    )
}

type Handler = fn(&Services, &[u8]);

/// An Admin change request: converted, then sent as a dry run.
macro_rules! change {
    ($message:ident, $method:ident) => {
        |s: &Services, bytes: &[u8]| {
            let Ok(mut r) = proto::$message::decode(bytes) else {
                return;
            };
            let converted = Mutation::try_from(&r);
            r.dry_run = true;
            let actor = r.actor.clone();
            let answer = s.run(Admin::$method(&s.admin, Request::new(r)));
            s.judge_change(converted, &actor, answer.map(tonic::Response::into_inner));
        }
    };
}

/// A read of any service: decoded and answered; the answer is not judged.
macro_rules! read {
    ($message:ty, $field:ident, $trait:ident :: $method:ident) => {
        |s: &Services, bytes: &[u8]| {
            let Ok(r) = <$message>::decode(bytes) else {
                return;
            };
            let _ = s.run($trait::$method(&s.$field, Request::new(r)));
        }
    };
}

const HANDLERS: &[(&str, Handler)] = &[
    ("Check", |s, bytes| {
        let Ok(r) = proto::CheckRequest::decode(bytes) else {
            return;
        };
        let newer = wants_newer(s, r.consistency.as_ref());
        let fields = convert::check_fields(&r.tenant, &r.subject, &r.permission);
        let request = policy::Request {
            tenant: &r.tenant,
            subject: &r.subject,
            permission: &r.permission,
        };
        let plain = reference::decide(&s.state, &request, Timestamp::now());
        let answer = s
            .run(Authorization::check(
                &s.authorization,
                Request::new(r.clone()),
            ))
            .map(tonic::Response::into_inner);
        if newer {
            assert_eq!(answer.map_err(|s| s.code()).err(), Some(Code::Unavailable));
            return;
        }
        if let Err(e) = fields {
            return same_error(&answer, Code::InvalidArgument, &e.to_string());
        }
        match plain {
            Ok(o) => {
                let got = answer.unwrap_or_else(|e| panic!("{r:?}: {e:?}"));
                assert_eq!(
                    got.decision,
                    convert::decision(o.verdict.decision) as i32,
                    "{r:?}"
                );
                assert_eq!(
                    got.reason,
                    convert::reason(o.verdict.reason) as i32,
                    "{r:?}"
                );
                assert_eq!(got.explanation.is_some(), r.explain);
            }
            Err(e) => {
                let want = proto::status(&e);
                same_error(&answer, want.code(), want.message());
            }
        }
    }),
    ("BatchCheck", |s, bytes| {
        let Ok(r) = proto::BatchCheckRequest::decode(bytes) else {
            return;
        };
        let items = r.items.len();
        let answer = s.run(Authorization::batch_check(
            &s.authorization,
            Request::new(r),
        ));
        if let Ok(a) = answer {
            assert_eq!(a.get_ref().results.len(), items, "an item left unanswered");
        }
    }),
    (
        "ListSubjectPermissions",
        read!(
            proto::ListSubjectPermissionsRequest,
            authorization,
            Authorization::list_subject_permissions
        ),
    ),
    (
        "ListSubjects",
        read!(
            proto::ListSubjectsRequest,
            authorization,
            Authorization::list_subjects
        ),
    ),
    ("CreateTenant", change!(CreateTenantRequest, create_tenant)),
    ("UpdateTenant", change!(UpdateTenantRequest, update_tenant)),
    ("DeleteTenant", change!(DeleteTenantRequest, delete_tenant)),
    (
        "ListTenants",
        read!(proto::ListTenantsRequest, admin, Admin::list_tenants),
    ),
    (
        "DefineCatalogEntry",
        change!(DefineCatalogEntryRequest, define_catalog_entry),
    ),
    (
        "SetCatalogStability",
        change!(SetCatalogStabilityRequest, set_catalog_stability),
    ),
    (
        "RemoveCatalogEntry",
        change!(RemoveCatalogEntryRequest, remove_catalog_entry),
    ),
    (
        "ListCatalog",
        read!(proto::ListCatalogRequest, admin, Admin::list_catalog),
    ),
    (
        "SetBridgesGrants",
        change!(SetBridgesGrantsRequest, set_bridges_grants),
    ),
    ("CreateRole", change!(CreateRoleRequest, create_role)),
    (
        "UpdateRoleDescription",
        change!(UpdateRoleDescriptionRequest, update_role_description),
    ),
    ("DeleteRole", change!(DeleteRoleRequest, delete_role)),
    (
        "GetRole",
        read!(proto::GetRoleRequest, admin, Admin::get_role),
    ),
    (
        "ListRoles",
        read!(proto::ListRolesRequest, admin, Admin::list_roles),
    ),
    ("Grant", change!(GrantRequest, grant)),
    ("Revoke", change!(RevokeRequest, revoke)),
    ("SetGrants", change!(SetGrantsRequest, set_grants)),
    ("CreateGroup", change!(CreateGroupRequest, create_group)),
    ("DeleteGroup", change!(DeleteGroupRequest, delete_group)),
    ("AddMember", change!(AddMemberRequest, add_member)),
    ("RemoveMember", change!(RemoveMemberRequest, remove_member)),
    (
        "ListGroups",
        read!(proto::ListGroupsRequest, admin, Admin::list_groups),
    ),
    ("AddUser", change!(AddUserRequest, add_user)),
    (
        "UpdateUserStatus",
        change!(UpdateUserStatusRequest, update_user_status),
    ),
    (
        "UpdateUserInfo",
        change!(UpdateUserInfoRequest, update_user_info),
    ),
    ("RemoveUser", change!(RemoveUserRequest, remove_user)),
    (
        "ListUsers",
        read!(proto::ListUsersRequest, admin, Admin::list_users),
    ),
    ("Assign", change!(AssignRequest, assign)),
    ("Unassign", change!(UnassignRequest, unassign)),
    (
        "ListBindings",
        read!(proto::ListBindingsRequest, admin, Admin::list_bindings),
    ),
    (
        "ListAuditLog",
        read!(proto::ListAuditLogRequest, admin, Admin::list_audit_log),
    ),
    ("Watch", |_, bytes| {
        let Ok(r) = proto::WatchRequest::decode(bytes) else {
            return;
        };
        if let Ok(tenants) = WatchTenants::try_from(&r) {
            assert_eq!(tenants.0.len(), r.tenants.len());
        }
    }),
    ("Export", |_, bytes| {
        let _ = proto::ExportRequest::decode(bytes);
    }),
    ("Import", |_, bytes| {
        let Ok(chunk) = proto::ExportChunk::decode(bytes) else {
            return;
        };
        let mut reader = Reader::new();
        if reader.feed(&chunk.data).is_ok() {
            let stated = (!chunk.digest.is_empty()).then_some(chunk.digest.as_str());
            let _ = reader.finish(stated);
        }
    }),
    ("GetState", |_, bytes| {
        let _ = proto::GetStateRequest::decode(bytes);
    }),
    ("envoy Check", |s, bytes| {
        let Ok(r) = EnvoyCheckRequest::decode(bytes) else {
            return;
        };
        let answer = s.run(EnvoyAuthorization::check(&s.envoy, Request::new(r)));
        // ext_authz answers every request; a deny is a CheckResponse.
        assert!(answer.is_ok(), "{answer:?}");
    }),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let s = services();
    let (_, handler) = HANDLERS[usize::from(pick) % HANDLERS.len()];
    handler(s, bytes);
    assert_eq!(
        s.engine.load().revision(),
        s.state.revision,
        "a request changed the state"
    );
});
