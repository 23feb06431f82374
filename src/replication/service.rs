//! The `rampart.v1.Replication` service: Watch, Export, Import, GetState.
//!
//! A Watch is checked and its stream handed to a task (`watch.rs`), which
//! reads the store's changelog page by page from the client's revision.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use super::caller::Caller;
use super::convert::{ExportTenants, WatchTenants};
use super::export::{self, ExportError};
use super::filter::TenantFilter;
use super::refusal::watch_refusal;
use super::watch::{PAGE, Watcher};
use super::{ReplicaStatus, ReplicationConfig, Role, TENANTS_HEADER};
use crate::engine::{Engine, Scope, StoreHealth};
use crate::proto::{self, replication_server::Replication};
use crate::store::{History, Store, StoreError, new_history_id};

/// Bytes of export data per chunk.
const CHUNK_BYTES: usize = 1 << 20;

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::WatchEvent, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<proto::ExportChunk, Status>> + Send>>;

/// The service.
#[derive(Clone)]
pub struct ReplicationService {
    engine: Arc<Engine>,
    config: Arc<ReplicationConfig>,
    watchers: Arc<AtomicU64>,
    /// The last digest computed.
    digest: Arc<Mutex<Option<Digested>>>,
    /// Becomes `true` when the server shuts down: Watch streams end.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for ReplicationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationService")
            .field("role", &self.config.role)
            .finish_non_exhaustive()
    }
}

/// A digest computed, and what of: a revision of a history, some tenants
/// (`None`: every tenant).
struct Digested {
    revision: u64,
    history: String,
    scope: Option<Scope>,
    digest: String,
}

/// A store failure as the caller's status: its kind's code (a failed
/// read is UNAVAILABLE, as in every service).
fn store_status(e: StoreError) -> Status {
    proto::status(&e)
}

impl ReplicationService {
    pub fn new(
        engine: Arc<Engine>,
        config: ReplicationConfig,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            engine,
            config: Arc::new(config),
            watchers: Arc::new(AtomicU64::new(0)),
            digest: Arc::new(Mutex::new(None)),
            stopping,
        }
    }

    /// Watch streams served now.
    pub fn watchers(&self) -> u64 {
        self.watchers.load(Ordering::Relaxed)
    }

    /// The live count behind [`ReplicationService::watchers`], for metrics.
    pub fn watcher_count(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.watchers)
    }

    fn store(&self) -> Result<Arc<dyn Store>, Status> {
        self.engine.store().cloned().ok_or_else(|| match self.engine.scope() {
            Some(scope) => Status::failed_precondition(format!(
                "this node holds only the tenants named by --tenants ({}) and keeps no changelog: watch {}",
                scope.listed(),
                self.leader_named()
            )),
            None => {
                Status::failed_precondition("this node keeps no changelog (it runs without a store)")
            }
        })
    }

    /// "its leader at URL", or "the leader" where this node is none's replica.
    fn leader_named(&self) -> String {
        match &self.config.role {
            Role::Replica { leader, .. } => format!("its leader at {leader}"),
            Role::Leader => "the leader".to_owned(),
        }
    }

    /// The tenants an export (or a digest) covers: those `asked` (`None`:
    /// every tenant). A node that holds some tenants only (`--tenants`)
    /// exports those it holds, and refuses, naming the others, to pass a
    /// part off as the whole or to export tenants it does not hold.
    fn export_scope(&self, asked: Option<Scope>) -> Result<Option<Scope>, Status> {
        let Some(held) = self.engine.scope() else {
            return Ok(asked);
        };
        match asked {
            None => Err(Status::failed_precondition(format!(
                "this node holds only the tenants named by --tenants ({}): export those (`tenants`), or the whole state from {}",
                held.listed(),
                self.leader_named()
            ))),
            Some(asked) if held.covers(&asked) => Ok(Some(asked)),
            Some(asked) => Err(Status::failed_precondition(format!(
                "this node holds only the tenants named by --tenants ({}), not {}: export them from {}",
                held.listed(),
                crate::model::backticked(&held.missing(&asked)),
                self.leader_named()
            ))),
        }
    }

    /// The tenants GetState tells `caller` about (`None`: every tenant):
    /// those the node holds; for a caller confined to tenants, those of its
    /// tenants the node holds, and a refusal where it holds none of them.
    fn state_scope(&self, caller: Option<&Caller>) -> Result<Option<Scope>, Status> {
        let held = self.engine.scope();
        let Some((name, own)) = caller.and_then(|c| c.tenants.as_ref().map(|t| (&c.name, t)))
        else {
            return Ok(held.cloned());
        };
        let Some(held) = held else {
            return Ok(Some(own.clone()));
        };
        let seen = own.tenants().iter().filter(|t| held.holds(t.as_str()));
        match Scope::new(seen.cloned()) {
            Some(seen) => Ok(Some(seen)),
            None => Err(Status::failed_precondition(format!(
                "this node holds none of the tenants credential `{name}` is confined to ({}): ask {}",
                own.listed(),
                self.leader_named()
            ))),
        }
    }

    /// The digest of the current snapshot's export of `scope` (`None`:
    /// every tenant), cached per revision: what Export of the same tenants
    /// hashes to, on this node or its leader.
    async fn current_digest(&self, scope: Option<Scope>) -> Result<(u64, String), Status> {
        let (snapshot, history) = self.view().await?;
        let state = Arc::clone(snapshot.state());
        let history = history.id;
        let mut cached = self.digest.lock().await;
        if let Some(c) = cached.as_ref()
            && c.revision == state.revision
            && c.history == history
            && c.scope == scope
        {
            return Ok((c.revision, c.digest.clone()));
        }
        let revision = state.revision;
        let of = scope.clone();
        let digest = tokio::task::spawn_blocking(move || export::digest_in(&state, of.as_ref()))
            .await
            .map_err(|e| Status::internal(format!("digest task failed: {e}")))?
            .map_err(|e| Status::internal(e.to_string()))?;
        *cached = Some(Digested {
            revision,
            history,
            scope,
            digest: digest.clone(),
        });
        Ok((revision, digest))
    }

    /// The published snapshot and this node's history, read together.
    async fn view(&self) -> Result<(Arc<crate::policy::Snapshot>, History), Status> {
        self.engine.consistent_view().await.map_err(store_status)
    }

    async fn history(&self) -> Result<History, Status> {
        self.engine.history().await.map_err(store_status)
    }
}

/// Whose export stream is read: an Import's upload (a server reading its
/// client) or a leader's Export (a replica reading its leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Upload,
    Leader,
}

/// A failure reading an Import's upload, as the client is told it. Whatever
/// tonic reports while reading the request stream is about the bytes the
/// client sent: a frame it cannot read (`INTERNAL`: cut off, a bad
/// compressed flag, a chunk that does not decode) is `INVALID_ARGUMENT`, a
/// chunk over the 64 MiB limit (`OUT_OF_RANGE`) is `RESOURCE_EXHAUSTED`, as
/// on every buffered call (`server::limits`). By code, not by wording.
pub(crate) fn upload_status(s: Status) -> Status {
    match s.code() {
        tonic::Code::Internal => Status::invalid_argument(s.message()),
        tonic::Code::OutOfRange => Status::resource_exhausted(s.message()),
        _ => s,
    }
}

/// A whole export, read and checked against its digest.
pub(crate) struct Received {
    pub state: crate::model::State,
    pub digest: String,
    /// The history the chunks carried (empty if none did).
    pub history: String,
}

/// Reads an export stream (Import's request, or Export's answer to a
/// replica), parsing off the async workers as the chunks arrive (a million
/// users is ~1 s of JSON), and checks it against the digest of its last
/// chunk. A malformed, truncated or unsigned export is INVALID_ARGUMENT; a
/// failed stream is its own status, or for an upload [`upload_status`].
pub(crate) async fn receive_export(
    stream: &mut Streaming<proto::ExportChunk>,
    origin: Origin,
) -> Result<Received, Status> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let parsing = tokio::task::spawn_blocking(move || {
        let mut reader = export::Reader::new();
        while let Some(data) = rx.blocking_recv() {
            reader.feed(&data)?;
        }
        Ok::<_, ExportError>(reader)
    });
    let mut history = None;
    let mut stated: Option<String> = None;
    let mut failed = None;
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                if stated.is_some() {
                    failed = Some(Status::invalid_argument(
                        "a chunk follows the one that carried the digest",
                    ));
                    break;
                }
                history.get_or_insert(chunk.history);
                if !chunk.digest.is_empty() {
                    stated = Some(chunk.digest);
                }
                // The parser stopped on bad input: its error says why.
                if tx.send(chunk.data).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(s) => {
                failed = Some(match origin {
                    Origin::Upload => upload_status(s),
                    Origin::Leader => s,
                });
                break;
            }
        }
    }
    drop(tx);
    let parsed = parsing
        .await
        .map_err(|e| Status::internal(format!("import task failed: {e}")))?;
    if let Some(status) = failed {
        return Err(status);
    }
    let reader = parsed.map_err(|e| Status::invalid_argument(e.to_string()))?;
    let Some(stated) = stated else {
        return Err(Status::invalid_argument(
            "the export ends without its digest: it is incomplete",
        ));
    };
    let (state, digest) = tokio::task::spawn_blocking(move || reader.finish(Some(&stated)))
        .await
        .map_err(|e| Status::internal(format!("import task failed: {e}")))?
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(Received {
        state,
        digest,
        history: history.unwrap_or_default(),
    })
}

/// Decrements the watcher count when a Watch task ends, however it ends.
struct Watching(Arc<AtomicU64>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[tonic::async_trait]
impl Replication for ReplicationService {
    type WatchStream = EventStream;
    type ExportStream = ChunkStream;

    async fn watch(
        &self,
        request: Request<proto::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = Caller::of(&request).cloned();
        let req = request.into_inner();
        let store = self.store()?;
        let WatchTenants(asked) = WatchTenants::try_from(&req).map_err(|e| proto::status(&e))?;
        let tenants =
            Caller::narrow(caller.as_ref(), Scope::new(asked)).map_err(|e| proto::status(&e))?;
        let header = tenants.as_ref().map(tenants_header).transpose()?;
        // A filter is made at a snapshot of this history.
        let (have, filter) = match tenants {
            None => (self.history().await?, None),
            Some(tenants) => {
                let (snapshot, have) = self.view().await?;
                let filter = TenantFilter::new(tenants, snapshot.state());
                (have, Some((filter, snapshot.revision())))
            }
        };
        if let Some(refused) = watch_refusal(req.from_revision, &req.history, &have) {
            return Err(proto::status(&refused));
        }
        let (tx, rx) = mpsc::channel(PAGE);
        self.watchers.fetch_add(1, Ordering::Relaxed);
        let guard = Watching(Arc::clone(&self.watchers));
        let watcher = Watcher {
            engine: Arc::clone(&self.engine),
            store,
            revisions: self.engine.revisions(),
            stopping: self.stopping.clone(),
            heartbeat: self.config.heartbeat,
            history: have.id,
            from: req.from_revision,
            filter,
        };
        debug!(
            from = watcher.from,
            tenants = watcher
                .filter
                .as_ref()
                .map_or(0, |(f, _)| f.tenants().tenants().len()),
            "watch started"
        );
        tokio::spawn(async move {
            let _guard = guard;
            watcher.run(tx).await;
        });
        Ok(with_header(
            Response::new(Box::pin(ReceiverStream::new(rx))),
            header,
        ))
    }

    async fn export(
        &self,
        request: Request<proto::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let ExportTenants(asked) =
            ExportTenants::try_from(request.get_ref()).map_err(|e| proto::status(&e))?;
        let asked = Caller::narrow(Caller::of(&request), asked).map_err(|e| proto::status(&e))?;
        let scope = self.export_scope(asked)?;
        let header = scope.as_ref().map(tenants_header).transpose()?;
        let (snapshot, history) = self.view().await?;
        let state = Arc::clone(snapshot.state());
        let history = history.id;
        let revision = state.revision;
        let (tx, rx) = mpsc::channel::<Result<proto::ExportChunk, Status>>(4);
        info!(
            revision,
            tenants = scope.as_ref().map_or(0, |s| s.tenants().len()),
            "export started"
        );
        tokio::task::spawn_blocking(move || {
            let chunk = |data: Vec<u8>, digest: String| proto::ExportChunk {
                revision,
                data,
                digest,
                history: history.clone(),
            };
            let mut hasher_input = Vec::with_capacity(CHUNK_BYTES);
            let mut digest = sha2::Sha256::default();
            for line in export::lines_in(&state, scope.as_ref()) {
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
                        return;
                    }
                };
                sha2::Digest::update(&mut digest, &line);
                hasher_input.extend_from_slice(&line);
                while hasher_input.len() >= CHUNK_BYTES {
                    let rest = hasher_input.split_off(CHUNK_BYTES);
                    let full = std::mem::replace(&mut hasher_input, rest);
                    if tx.blocking_send(Ok(chunk(full, String::new()))).is_err() {
                        return;
                    }
                }
            }
            let digest = export::format_digest(digest);
            let _ = tx.blocking_send(Ok(chunk(hasher_input, digest)));
        });
        Ok(with_header(
            Response::new(Box::pin(ReceiverStream::new(rx))),
            header,
        ))
    }

    async fn import(
        &self,
        request: Request<Streaming<proto::ExportChunk>>,
    ) -> Result<Response<proto::ImportResponse>, Status> {
        if let Role::Replica { leader, .. } = &self.config.role {
            return Err(Status::failed_precondition(format!(
                "this node is a read replica: import into the leader at {leader}"
            )));
        }
        self.store()?;
        if self.engine.load().revision() != 0 {
            return Err(Status::failed_precondition(format!(
                "this node already holds a state (revision {}): import only into an empty store",
                self.engine.load().revision()
            )));
        }
        let received = receive_export(&mut request.into_inner(), Origin::Upload).await?;
        let (state, digest) = (received.state, received.digest);
        let history = new_history_id();
        let revision = self
            .engine
            .install_if_empty(state, &history)
            .await
            .map_err(|e| proto::status(&e))?;
        info!(revision, %digest, %history, "export imported");
        Ok(Response::new(proto::ImportResponse {
            revision,
            digest,
            history,
        }))
    }

    async fn get_state(
        &self,
        request: Request<proto::GetStateRequest>,
    ) -> Result<Response<proto::GetStateResponse>, Status> {
        // A confined caller hears of its tenants only.
        let scope = self.state_scope(Caller::of(&request))?;
        // A store that cannot be read (a database outage) is part of the
        // answer, not a failure of it: the node still serves checks.
        let (history, oldest_retained, unreadable) = match self.history().await {
            Ok(h) => (h.id, h.first, None),
            Err(status) => (String::new(), 0, Some(status.message().to_owned())),
        };
        // With a digest, the revision is the one the digest is of.
        let (revision, digest) = if request.into_inner().digest {
            self.current_digest(scope.clone()).await?
        } else {
            (self.engine.load().revision(), String::new())
        };
        let health = self.engine.store_health().borrow().clone();
        let store_error = match (&health, unreadable) {
            (StoreHealth::Failed(why) | StoreHealth::Stuck(why), _) => why.clone(),
            (StoreHealth::Writable, Some(why)) => why,
            (StoreHealth::Writable, None) => String::new(),
        };
        let mut out = proto::GetStateResponse {
            revision,
            history,
            digest,
            role: "leader".into(),
            oldest_retained,
            watchers: self.watchers(),
            store_writable: store_error.is_empty(),
            store_error,
            // The tenants held: empty on a node that holds every tenant.
            tenants: match (self.engine.scope(), scope) {
                (Some(_), Some(seen)) => seen.names(),
                _ => Vec::new(),
            },
            ..Default::default()
        };
        if let Role::Replica { leader, status, .. } = &self.config.role {
            replica_fields(&mut out, leader, status, revision);
        }
        Ok(Response::new(out))
    }
}

fn replica_fields(
    out: &mut proto::GetStateResponse,
    leader: &str,
    status: &ReplicaStatus,
    revision: u64,
) {
    let leader_revision = ReplicaStatus::get(&status.leader_revision);
    "replica".clone_into(&mut out.role);
    leader.clone_into(&mut out.leader);
    out.leader_revision = leader_revision;
    out.lag_revisions = leader_revision.saturating_sub(revision);
    out.lag_ms = ReplicaStatus::get(&status.lag_ms);
    out.reconnects = ReplicaStatus::get(&status.reconnects);
    out.rebootstraps = ReplicaStatus::get(&status.rebootstraps);
    out.connected = status.connected.load(Ordering::Relaxed);
}

/// The `rampart-tenants` response header: the tenants a Watch or an
/// Export covers, comma-separated, when not every tenant (a follower of
/// every tenant refuses such a stream, naming them).
fn tenants_header(scope: &Scope) -> Result<tonic::metadata::AsciiMetadataValue, Status> {
    scope
        .names()
        .join(",")
        .parse()
        .map_err(|_| Status::internal("a tenant id is not a header value"))
}

fn with_header<T>(
    mut response: Response<T>,
    header: Option<tonic::metadata::AsciiMetadataValue>,
) -> Response<T> {
    if let Some(value) = header {
        response.metadata_mut().insert(TENANTS_HEADER, value);
    }
    response
}
