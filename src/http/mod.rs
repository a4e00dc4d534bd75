//! The HTTP listeners (`listen.http`, and `listen.https` over TLS): mail client
//! autoconfiguration ([`autoconfig`]), `/healthz`, `/metrics`, and the answers to ACME
//! HTTP-01 challenges (`crate::acme`).
//!
//! HTTP/1.1 only. With a certificate for `autoconfig.DOMAIN` and `autodiscover.DOMAIN`
//! (ACME's `autoconfig_names`) `listen.https` serves them itself; else a TLS proxy goes
//! in front on the internet. The quickstart serves plain HTTP on loopback.
//!
//! Invariants:
//! - Documents are given for hosted domains only (404 otherwise), and never depend on
//!   whether the address exists: any local part of a hosted domain gets the same answer.
//! - Everything echoed into XML is escaped; request bodies are bounded.

mod autoconfig;
mod xml;

use crate::acme::Challenges;
use crate::services::Offered;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use netutil::{ConnectionLimiter, MaybeTlsStream, Shutdown, TlsAcceptor};
use std::sync::Arc;
use std::time::Duration;
use storage::Store;
use tokio::net::TcpListener;

/// Gauge: items waiting in the outbound queue, read from storage at each scrape.
const QUEUE_ITEMS: &str = "letterbox_queue_items";
/// Gauge: seconds since the oldest queue item was queued (0 when the queue is empty).
const QUEUE_OLDEST_AGE: &str = "letterbox_queue_oldest_age_seconds";

/// Histogram buckets for storage latency, in seconds: an fsynced commit takes from well
/// under a millisecond (fast SSD, no fsync wait) to seconds (a busy disk, a large message).
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// How often histogram samples are folded into their buckets between scrapes, so
/// memory stays bounded when nobody scrapes.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// The largest autodiscover request body: Outlook's POX request is a few hundred
/// octets; anything much larger is not one.
const MAX_REQUEST_BODY: usize = 16 * 1024;
/// A client must send a whole request head within this time (slowloris); a mail
/// client or a Prometheus scrape sends it at once.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection stays open, kept-alive or not: autoconfiguration is one or
/// two requests, a scraper reconnects; nobody holds a slot for long.
const MAX_CONNECTION_TIME: Duration = Duration::from_secs(60);
/// After [`MAX_CONNECTION_TIME`] or on shutdown, how long a request in flight may take
/// to finish before the connection is dropped: a body sent a byte at a time holds no
/// slot for longer than this.
const FINISH_GRACE: Duration = Duration::from_secs(5);
/// How long a health check waits for storage before calling it unhealthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// What every handler needs.
#[derive(Clone)]
pub struct HttpState {
    pub store: Store,
    /// Our host name: the server name in every document.
    pub hostname: Arc<str>,
    /// The mail services and their ports, implicit TLS first.
    pub services: Arc<[Offered]>,
    pub metrics: PrometheusHandle,
    /// The HTTP-01 answers of the ACME order in flight (none without `[acme]`).
    pub acme: Arc<Challenges>,
}

impl FromRef<HttpState> for Arc<Challenges> {
    fn from_ref(state: &HttpState) -> Self {
        state.acme.clone()
    }
}

/// Installs the process-wide Prometheus recorder (before any metric is recorded, so
/// none is lost) and describes our metrics. Call once.
pub fn install_metrics(shutdown: &Shutdown) -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)?
        .install_recorder()?;
    describe_metrics();
    let upkeep = handle.clone();
    let token = shutdown.token.clone();
    shutdown.tracker.spawn(async move {
        let mut interval = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = interval.tick() => upkeep.run_upkeep(),
            }
        }
    });
    Ok(handle)
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        netutil::CONNECTIONS_OPEN,
        "Connections open now, by listener."
    );
    describe_counter!(
        netutil::CONNECTIONS_TOTAL,
        "Connections accepted, by listener."
    );
    describe_counter!(
        netutil::CONNECTIONS_REFUSED,
        "Connections refused at the connection limit, by listener."
    );
    describe_counter!(netutil::AUTH_FAILURES, "Failed logins, by protocol.");
    describe_counter!(
        smtp::SMTP_COMMANDS,
        "SMTP commands answered, by verb and reply class."
    );
    describe_counter!(
        imap::IMAP_COMMANDS,
        "IMAP commands answered, by command and status."
    );
    describe_counter!(
        storage::MESSAGES_DELIVERED,
        "Messages placed in a mailbox by delivery (one per mailbox)."
    );
    describe_histogram!(
        storage::DELIVER_SECONDS,
        Unit::Seconds,
        "Time from a delivery's start to its durable commit."
    );
    describe_histogram!(
        storage::COMMIT_SECONDS,
        Unit::Seconds,
        "Time of one group commit of the storage writer."
    );
    describe_gauge!(QUEUE_ITEMS, "Messages waiting in the outbound queue.");
    describe_gauge!(
        smtp::budget::SMTP_DATA_IN_FLIGHT,
        Unit::Bytes,
        "Bytes of message content SMTP sessions hold in memory now (DATA and BDAT)."
    );
    describe_gauge!(
        QUEUE_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest message in the outbound queue."
    );
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(crate::acme::HTTP01_PATH, get(crate::acme::http01))
        .merge(autoconfig::routes())
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One INFO line per request, in the connection's span (which names the peer): method,
/// path (the query is left out: it carries email addresses), status and time taken.
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "HTTP request"
    );
    response
}

/// The ALPN protocol of HTTP/1.1 (RFC 7301 §6), the only one served over TLS.
pub const HTTP1_ALPN: &[u8] = b"http/1.1";

/// Serves `router` on `listener` until shutdown, over TLS from the first byte when
/// `tls` is given. Each connection holds a slot of the server-wide connection limit,
/// must finish its TLS handshake within netutil's limit and send its request head within
/// [`HEADER_READ_TIMEOUT`], and lives at most [`MAX_CONNECTION_TIME`]; on shutdown (or
/// at that age) it may finish the request in flight within [`FINISH_GRACE`], then closes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    connections: ConnectionLimiter,
    shutdown: Shutdown,
    tls: Option<TlsAcceptor>,
) {
    let address = listener.local_addr().ok();
    let scheme = if tls.is_some() { "HTTPS" } else { "HTTP" };
    tracing::info!(?address, "{scheme} listener started");
    let service = TowerToHyperService::new(router);
    while let Some((tcp, peer)) = netutil::accept(&listener, &shutdown).await {
        let Some(permit) = connections.try_acquire(peer.ip()) else {
            tracing::info!(%peer, "{scheme} connection refused: too many connections");
            continue;
        };
        let service = service.clone();
        let token = shutdown.token.clone();
        let tls = tls.clone();
        let span = tracing::info_span!("http", %peer);
        let task = async move {
            let _permit = permit;
            let stream = match tls {
                None => MaybeTlsStream::Plain(tcp),
                Some(acceptor) => match MaybeTlsStream::Plain(tcp).upgrade(&acceptor).await {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::debug!(%error, "HTTPS connection closed");
                        return;
                    }
                },
            };
            if let MaybeTlsStream::Tls(tls) = &stream
                && tls
                    .get_ref()
                    .1
                    .alpn_protocol()
                    .is_some_and(|p| p != HTTP1_ALPN)
            {
                // Another protocol was negotiated: ACME's acme-tls/1, whose validation
                // is the handshake itself (RFC 8737 §3: no data follows; close).
                tracing::debug!("TLS-ALPN-01 validation handshake done");
                return;
            }
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let ended = tokio::select! {
                result = connection.as_mut() => Some(result),
                _ = token.cancelled() => None,
                _ = tokio::time::sleep(MAX_CONNECTION_TIME) => None,
            };
            let result = match ended {
                Some(result) => result,
                // Shutdown or the age limit: the request in flight may finish within
                // FINISH_GRACE; then the connection is dropped, body or not.
                None => {
                    connection.as_mut().graceful_shutdown();
                    match tokio::time::timeout(FINISH_GRACE, connection).await {
                        Ok(result) => result,
                        Err(_) => {
                            tracing::debug!(%peer, "HTTP connection closed: request unfinished at its deadline");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "HTTP connection ended with an error");
            }
        };
        shutdown
            .tracker
            .spawn(tracing::Instrument::instrument(task, span));
    }
    tracing::info!(?address, "{scheme} listener stopped");
}

/// 200 `ok` when storage answers a trivial query in time, 503 otherwise.
async fn healthz(State(state): State<HttpState>) -> Response {
    match tokio::time::timeout(HEALTH_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check: storage failed");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response()
        }
        Err(_) => {
            tracing::warn!("health check: storage timed out");
            (StatusCode::SERVICE_UNAVAILABLE, "storage timed out\n").into_response()
        }
    }
}

/// The Prometheus text exposition format (version 0.0.4).
async fn metrics(State(state): State<HttpState>) -> Response {
    match state.store.queue_stats().await {
        Ok(stats) => {
            metrics::gauge!(QUEUE_ITEMS).set(stats.items as f64);
            let age = stats.oldest_created_at.map_or(0, |created| {
                storage::UnixTime::now().seconds_since(created).max(0)
            });
            metrics::gauge!(QUEUE_OLDEST_AGE).set(age as f64);
        }
        // The rest of the metrics are still worth having; the queue gauges keep their
        // last values.
        Err(error) => tracing::warn!(%error, "metrics: cannot read the queue size"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// An answer with no document: the status and a one-line reason.
fn plain_error(status: StatusCode, reason: &str) -> Response {
    (status, format!("{reason}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A request body sent a byte at a time cannot hold a connection past its deadline:
    /// at MAX_CONNECTION_TIME plus FINISH_GRACE the server closes it.
    #[tokio::test(start_paused = true)]
    async fn a_slow_request_body_is_cut_off_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let router = Router::new().route("/upload", post(|body: String| async move { body }));
        let shutdown = Shutdown::new();
        let server = tokio::spawn(serve(
            listener,
            router,
            ConnectionLimiter::new(10, 10),
            shutdown.clone(),
            None,
        ));
        let mut client = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        client
            .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            .await
            .expect("head");
        let started = tokio::time::Instant::now();
        let mut answer = Vec::new();
        let closed = loop {
            // One byte of body every 10 s, far slower than a client sends.
            if client.write_all(b"x").await.is_err() {
                break true;
            }
            let mut buffer = [0u8; 1024];
            match tokio::time::timeout(Duration::from_secs(10), client.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
            if started.elapsed() > MAX_CONNECTION_TIME * 10 {
                break false;
            }
        };
        assert!(
            closed,
            "the connection is still open after ten times its limit"
        );
        assert!(
            started.elapsed() <= MAX_CONNECTION_TIME + FINISH_GRACE + Duration::from_secs(10),
            "closed only after {:?}",
            started.elapsed()
        );
        shutdown.shutdown_and_wait().await;
        server.await.expect("listener task");
    }
}
