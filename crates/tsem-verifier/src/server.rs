//! The verifier's HTTP service and its lease keeper.
//!
//! Every verifier process is equal: any of them issues nonces, appraises posts and answers status
//! queries, because everything they share is in the database. Leases decide only which process
//! watches which workload for silence; a process that dies stops renewing its leases, and the
//! others take them over when they expire (the defect Keylime #1091 describes cannot happen: a
//! workload nobody watches still reads `stale` in every status answer, which is computed from the
//! clock, and is recorded as such by whoever takes its lease).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::appraise::{self, AppraiseError};
use crate::protocol::{self, ErrorBody, NonceGrant, one_line};
use crate::store::{NewEnrolment, Store, StoreError};

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Plain HTTP anywhere but on loopback would expose tokens and let a network attacker delay
    /// or drop attestations unseen.
    #[error(
        "refusing plain HTTP on {0}: listen on a loopback address (127.0.0.1, ::1), or serve TLS with --tls-cert and --tls-key"
    )]
    NotLoopback(SocketAddr),
    /// The socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// How a verifier process runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The admin token (enrolment); `None` refuses enrolment.
    pub admin_token: Option<String>,
    /// Seconds a nonce stays valid.
    pub nonce_ttl: u64,
    /// Seconds a lease lasts unless renewed (renewed every third of it).
    pub lease_ttl: u64,
    /// This process's name in leases and history.
    pub id: String,
    /// Status and history need the admin token too (by default anyone may read verdicts).
    pub private_status: bool,
    /// Serve HTTPS with this configuration (then any address is allowed).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Nonces issued per workload per second by this process (the burst is as many); 0: no
    /// limit. A nonce costs no row, but anyone may ask for one and each lets a post be appraised.
    pub nonce_rate: u32,
    /// Refused posts per workload per second by this process (the burst is as many) before
    /// posts are answered 429 unchecked; 0: no limit. A refused post costs a signature check
    /// and consumes nothing ([`crate::rate`]).
    pub refusal_rate: u32,
    /// CA certificates (DER) that issue EK certificates. When there are any, a workload's TPM AK
    /// counts only after credential activation against an EK they certify ([`crate::activate`]).
    pub ek_cas: Vec<Vec<u8>>,
    /// Tokio worker threads; 0: one per core (for [`spawn`]: two).
    pub workers: usize,
}

impl Config {
    /// Defaults: nonces for 120 s, leases for 30 s, a fresh process id.
    pub fn new(admin_token: Option<String>) -> Self {
        Self {
            admin_token,
            nonce_ttl: 120,
            lease_ttl: 30,
            id: process_id(),
            nonce_rate: 50,
            refusal_rate: 50,
            tls: None,
            private_status: false,
            ek_cas: Vec::new(),
            workers: 0,
        }
    }
}

/// `n` random bytes as hex (nonces, tokens).
pub fn random_hex(n: usize) -> Result<String, ServerError> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| ServerError::Io {
        what: "randomness".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(tsem_attest::claims::to_hex(&b))
}

/// `host:pid:random`: unique across restarts and machines.
pub fn process_id() -> String {
    let host = tsem_attest::host_identity();
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    format!(
        "{host}:{}:{}",
        std::process::id(),
        tsem_attest::claims::to_hex(&r)
    )
}

pub(crate) struct App {
    pub(crate) store: Store,
    pub(crate) cfg: Config,
    /// Parsed models by digest: a digest names its content, so entries never go stale.
    pub(crate) models: Mutex<HashMap<String, Arc<tsem_attest::ExpectedModel>>>,
    /// Expected states by (model, aggregate, forensic points): a periodic attester's state is
    /// the same chain over the model's points every time ([`tsem_attest::StateMemo`]).
    pub(crate) states: tsem_attest::StateMemo,
    /// Enrolments by workload. They may go stale (a re-enrolment through another process);
    /// the append statement notices and the appraisal reloads ([`crate::appraise::appraise`]).
    pub(crate) enrolments: Mutex<HashMap<String, Arc<crate::appraise::CachedEnrolment>>>,
    /// Group commit of appraisals.
    pub(crate) batcher: crate::store::Batcher,
    /// Nonce issuance per workload ([`crate::rate`]).
    pub(crate) nonce_buckets: crate::rate::Buckets,
    /// Refused posts per workload ([`crate::rate`]).
    refusal_buckets: crate::rate::Buckets,
    /// Requests served since start (`GET /v1/health`).
    requests: Requests,
}

/// Requests this process has served, by kind: how many a client needs per attestation is
/// observable from outside (`GET /v1/health`), as operators and tests count them.
#[derive(Default)]
struct Requests {
    all: AtomicU64,
    nonces: AtomicU64,
    attestations: AtomicU64,
}

impl Requests {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "all": self.all.load(Ordering::Relaxed),
            "nonce": self.nonces.load(Ordering::Relaxed),
            "attestations": self.attestations.load(Ordering::Relaxed),
        })
    }
}

/// Check that serving on `addr` is acceptable: with TLS anywhere, plain HTTP only on loopback.
pub fn check_listen(addr: SocketAddr, tls: bool) -> Result<(), ServerError> {
    if tls || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServerError::NotLoopback(addr))
    }
}

/// The routes.
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(crate::ui::index))
        .route("/ui/workloads/{name}", get(crate::ui::workload))
        .route("/v1/health", get(health))
        .route(
            "/v1/enroll",
            post(enroll).layer(DefaultBodyLimit::max(protocol::MAX_ENROLMENT)),
        )
        .route("/v1/status", get(status_all))
        .route("/v1/workloads/{name}", get(status_one))
        .route("/v1/workloads/{name}/history", get(history))
        .route("/v1/workloads/{name}/nonce", post(nonce))
        .route(
            "/v1/workloads/{name}/activation",
            post(crate::activate::challenge).layer(DefaultBodyLimit::max(protocol::MAX_ACTIVATION)),
        )
        .route(
            "/v1/workloads/{name}/activation/{id}",
            post(crate::activate::answer),
        )
        .route(
            "/v1/workloads/{name}/attestations",
            post(attestation).layer(DefaultBodyLimit::max(protocol::MAX_POST)),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), count))
        .with_state(app)
}

async fn count(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    app.requests.all.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}

/// Serve on `listener` (already checked with [`check_listen`]) until `shutdown` resolves;
/// keep leases meanwhile, and give them up on the way out.
pub async fn serve(
    store: Store,
    cfg: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let app = Arc::new(App {
        store: store.clone(),
        cfg: cfg.clone(),
        models: Mutex::new(HashMap::new()),
        states: tsem_attest::StateMemo::default(),
        enrolments: Mutex::new(HashMap::new()),
        batcher: crate::store::Batcher::start(store.clone()),
        nonce_buckets: crate::rate::Buckets::new(cfg.nonce_rate),
        refusal_buckets: crate::rate::Buckets::new(cfg.refusal_rate),
        requests: Requests::default(),
    });
    let keeper = tokio::spawn(keep_leases(store.clone(), cfg.clone()));
    let io = |source| ServerError::Io {
        what: "serve".into(),
        source,
    };
    let result = match &cfg.tls {
        Some(tls) => {
            let listener = crate::tls::TlsListener::new(listener, tls.clone()).map_err(io)?;
            axum::serve(listener, router(app))
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(io)
        }
        None => axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(io),
    };
    keeper.abort();
    // Best effort: a crash skips this, and then the leases expire instead.
    let _ = store.release_leases(&cfg.id).await;
    result
}

/// Open the database, bind `addr` and serve until SIGINT or SIGTERM, on a runtime of its own;
/// `ready` is told the bound address (useful with port 0).
pub fn serve_blocking(
    addr: SocketAddr,
    db_url: &str,
    cfg: Config,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    check_listen(addr, cfg.tls.is_some())?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if cfg.workers > 0 {
        rt.worker_threads(cfg.workers);
    }
    let rt = rt.enable_all().build().map_err(|source| ServerError::Io {
        what: "tokio runtime".into(),
        source,
    })?;
    rt.block_on(async {
        let store = Store::open(db_url).await?;
        let listener = bind(addr).await?;
        let local = listener.local_addr().map_err(|source| ServerError::Io {
            what: format!("{addr}"),
            source,
        })?;
        ready(local);
        serve(store, cfg, listener, shutdown_signal()).await
    })
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Io {
            what: format!("cannot listen on {addr}"),
            source,
        })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A verifier serving on its own thread and runtime (for tests and embedding).
pub struct Spawned {
    /// The bound address.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl Spawned {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving (releasing leases) and wait for the thread.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServerError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ServerError::Io {
                what: "verifier thread".into(),
                source: std::io::Error::other("panicked"),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Serve on `addr` (loopback) with `db_url` in a thread of its own; returns once listening.
pub fn spawn(addr: SocketAddr, db_url: &str, cfg: Config) -> Result<Spawned, ServerError> {
    check_listen(addr, cfg.tls.is_some())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, ServerError>>();
    let db_url = db_url.to_string();
    let thread = std::thread::spawn(move || -> Result<(), ServerError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(if cfg.workers > 0 { cfg.workers } else { 2 })
            .enable_all()
            .build()
            .map_err(|source| ServerError::Io {
                what: "tokio runtime".into(),
                source,
            })?;
        rt.block_on(async move {
            let setup = async {
                let store = Store::open(&db_url).await?;
                let listener = bind(addr).await?;
                Ok::<_, ServerError>((store, listener))
            };
            let (store, listener) = match setup.await {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            match listener.local_addr() {
                Ok(a) => {
                    let _ = ready_tx.send(Ok(a));
                }
                Err(source) => {
                    let _ = ready_tx.send(Err(ServerError::Io {
                        what: "local address".into(),
                        source,
                    }));
                    return Ok(());
                }
            }
            serve(store, cfg, listener, async {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    let addr = ready_rx.recv().map_err(|_| ServerError::Io {
        what: "verifier thread".into(),
        source: std::io::Error::other("ended before listening"),
    })??;
    Ok(Spawned {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// Every third of a lease: renew ours, take expired ones, and record silence in the histories of
/// the workloads we hold.
async fn keep_leases(store: Store, cfg: Config) {
    let tick = Duration::from_millis((cfg.lease_ttl.max(1) * 1000 / 3).max(200));
    loop {
        let now = tsem_attest::now_unix();
        let claimed = store
            .claim_leases(&cfg.id, now, cfg.lease_ttl, 10_000)
            .await;
        if let Err(e) = claimed {
            eprintln!("tsem verifier: {e}");
        } else if let Err(e) = store.mark_stale_held(&cfg.id, now).await {
            eprintln!("tsem verifier: {e}");
        }
        tokio::time::sleep(tick).await;
    }
}

pub(crate) fn json_response<T: Serialize>(code: StatusCode, v: &T) -> Response {
    let body = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) fn error(code: StatusCode, msg: impl std::fmt::Display) -> Response {
    error_of_kind(code, msg, None)
}

/// An error answer with a [`ErrorBody::kind`] a client may act on.
fn error_of_kind(
    code: StatusCode,
    msg: impl std::fmt::Display,
    kind: Option<&'static str>,
) -> Response {
    json_response(
        code,
        &ErrorBody {
            error: one_line(&msg.to_string()),
            kind: kind.map(str::to_string),
        },
    )
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    eprintln!("tsem verifier: {e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

pub(crate) fn body_error(r: BytesRejection) -> Response {
    error(r.status(), r.body_text())
}

/// The body of a post to `/v1/workloads/{name}/…`, or the refusal of a malformed name or an
/// unreadable (oversized) body.
pub(crate) fn named_body(
    name: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Box<Response>> {
    protocol::check_name(name).map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, e)))?;
    body.map_err(|r| Box::new(body_error(r)))
}

/// Compare without leaking the position of the first difference through timing.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `None` when the request carries the admin token, else the refusal to send.
fn refuse_non_admin(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &app.cfg.admin_token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "this verifier has no admin token (serve --admin-token-file)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if same_secret(g.trim().as_bytes(), token.as_bytes()) => None,
        Some(_) => Some(error(StatusCode::UNAUTHORIZED, "wrong admin token")),
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "admin token required (Authorization: Bearer)",
        )),
    }
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint (see docs/verifier.md)",
    )
}

async fn health(State(app): State<Arc<App>>) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "ok": true,
            "verifier": app.cfg.id,
            "requests": app.requests.json(),
        }),
    )
}

async fn enroll(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(r) = refuse_non_admin(&app, &headers) {
        return r;
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_error(r),
    };
    let e = match protocol::parse_enrolment(&body) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let checked = match appraise::check_enrolment(&e) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let new = NewEnrolment {
        workload: &e.workload,
        key: e.key.as_deref(),
        ak: e.ak.as_deref(),
        max_forensics: e.max_forensics,
        on_forensic: e.on_forensic.as_deref(),
        every: e.every,
        models: &checked,
    };
    let enrolled = app
        .store
        .enroll(&new, tsem_attest::now_unix(), &app.cfg.id)
        .await;
    // Other processes notice through their append statements; this one need not.
    if let Ok(mut c) = app.enrolments.lock() {
        c.remove(&e.workload);
    }
    match enrolled {
        Ok(id) => json_response(
            StatusCode::CREATED,
            &serde_json::json!({
                "workload": e.workload,
                "enrolment": id,
                "models": checked.iter().map(|m| &m.0).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => internal(e),
    }
}

/// The refusal for a status or history read, when they are private and the token is missing.
pub(crate) fn refuse_reader(app: &App, headers: &HeaderMap) -> Option<Response> {
    if app.cfg.private_status {
        refuse_non_admin(app, headers)
    } else {
        None
    }
}

async fn status_all(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse_reader(&app, &headers) {
        return r;
    }
    match app.store.status(tsem_attest::now_unix(), None).await {
        Ok(v) => json_response(StatusCode::OK, &serde_json::json!({ "workloads": v })),
        Err(e) => internal(e),
    }
}

async fn status_one(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse_reader(&app, &headers) {
        return r;
    }
    if let Err(e) = protocol::check_name(&name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    match app.store.status(tsem_attest::now_unix(), Some(&name)).await {
        Ok(v) => match v.into_iter().next() {
            Some(s) => json_response(StatusCode::OK, &s),
            None => error(
                StatusCode::NOT_FOUND,
                format!("workload {name:?} is not enrolled"),
            ),
        },
        Err(e) => internal(e),
    }
}

/// `?after=ID&limit=N`, both optional.
fn history_query(q: Option<&str>) -> Result<(i64, i64), String> {
    let (mut after, mut limit) = (0i64, 1000i64);
    for kv in q.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let n: i64 = v
            .parse()
            .map_err(|_| format!("query parameter {k:?}: {v:?} is not a number"))?;
        match k {
            "after" => after = n,
            "limit" => limit = n.clamp(1, 10_000),
            _ => return Err(format!("unknown query parameter {k:?}")),
        }
    }
    Ok((after, limit))
}

async fn history(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse_reader(&app, &headers) {
        return r;
    }
    if let Err(e) = protocol::check_name(&name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let (after, limit) = match history_query(q.as_deref()) {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match app.store.history(&name, after, limit).await {
        Ok(v) if v.is_empty() && after == 0 => error(
            StatusCode::NOT_FOUND,
            format!("workload {name:?} is not enrolled"),
        ),
        Ok(v) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "workload": name, "history": v }),
        ),
        Err(e) => internal(e),
    }
}

async fn nonce(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    app.requests.nonces.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = protocol::check_name(&name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    if !app.nonce_buckets.take(&name) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "rate limit: more than {} nonces per second for workload {name:?}",
                app.cfg.nonce_rate
            ),
        );
    }
    match appraise::enrolment(&app, &name, false).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            // Buckets are kept for enrolled workloads only: made-up names must not grow the map.
            app.nonce_buckets.forget(&name);
            return error(
                StatusCode::NOT_FOUND,
                format!("workload {name:?} is not enrolled"),
            );
        }
        Err(e) => return internal(e),
    }
    match issue_nonce(&app, &name) {
        Ok(g) => json_response(StatusCode::OK, &g),
        Err(e) => internal(e),
    }
}

/// A nonce for `workload` (enrolled), valid for the configured lifetime from now: a
/// computation, not a row ([`crate::nonce`]). The one way nonces are made, whether asked for or
/// handed out with an appraisal.
fn issue_nonce(app: &App, workload: &str) -> Result<NonceGrant, crate::nonce::NonceError> {
    let expires = tsem_attest::now_unix().saturating_add(app.cfg.nonce_ttl);
    let n = app.store.nonce_key().issue(workload, expires)?;
    Ok(NonceGrant {
        nonce: tsem_attest::claims::to_hex(&n),
        expires,
    })
}

async fn attestation(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    app.requests.attestations.fetch_add(1, Ordering::Relaxed);
    let body = match named_body(&name, body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if !app.refusal_buckets.has(&name) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "rate limit: more than {} refused posts per second for workload {name:?}",
                app.refusal_buckets.rate()
            ),
        );
    }
    match appraise::appraise(&app, &name, &body).await {
        Ok(mut a) => {
            // The post was authenticated (an unauthenticated one is refused, never recorded)
            // and its nonce consumed by the append that recorded it: the next nonce replaces
            // it, so handing one out never adds to the nonces the workload holds, and needs no
            // token from the rate limit, which bounds what unauthenticated requests can cause.
            // Refusals get none: a replay proves possession of an old post, not of the key.
            match issue_nonce(&app, &name) {
                Ok(g) => a.next_nonce = Some(g),
                // The appraisal is recorded: answer it; the client asks for a nonce next time.
                Err(e) => eprintln!("tsem verifier: {name}: no next nonce: {e}"),
            }
            json_response(StatusCode::OK, &a)
        }
        Err(e) => {
            let kind = match &e {
                AppraiseError::NonceExpired { .. } => Some(protocol::NONCE_EXPIRED),
                AppraiseError::NonceUnknown(_) => Some("nonce_unknown"),
                AppraiseError::Replayed { .. } => Some("replayed"),
                _ => None,
            };
            let code = match &e {
                AppraiseError::Protocol(_) | AppraiseError::Model(_) => StatusCode::BAD_REQUEST,
                AppraiseError::NotEnrolled(_) => StatusCode::NOT_FOUND,
                AppraiseError::NonceUnknown(_)
                | AppraiseError::NotActivated(_)
                | AppraiseError::NonceExpired { .. }
                | AppraiseError::Unauthentic(_) => StatusCode::FORBIDDEN,
                AppraiseError::Replayed { .. } | AppraiseError::Reenrolled(_) => {
                    StatusCode::CONFLICT
                }
                AppraiseError::Store(_) => return internal(e),
            };
            match &e {
                // Made-up names must not grow the map.
                AppraiseError::NotEnrolled(_) => app.refusal_buckets.forget(&name),
                _ => {
                    app.refusal_buckets.take(&name);
                }
            }
            eprintln!("tsem verifier: {name}: rejected: {e}");
            error_of_kind(code, format!("rejected: {e}"), kind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_queries() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert_eq!(history_query(None), Ok((0, 1000)));
        assert_eq!(history_query(Some("after=5&limit=0")), Ok((5, 1)));
        assert!(history_query(Some("after=x")).is_err());
        assert!(history_query(Some("drop=1")).is_err());
    }

    #[test]
    fn plain_http_only_on_loopback_tls_anywhere() {
        assert!(check_listen(([127, 0, 0, 1], 1).into(), false).is_ok());
        assert!(check_listen("[::1]:1".parse().unwrap_or(([0; 4], 0).into()), false).is_ok());
        assert!(check_listen(([0, 0, 0, 0], 1).into(), false).is_err());
        assert!(check_listen(([10, 0, 0, 1], 1).into(), false).is_err());
        assert!(check_listen(([0, 0, 0, 0], 1).into(), true).is_ok());
    }
}
