//! The HTTP server's accept loop, with the bounds `axum::serve` lacks.
//!
//! `axum::serve` sets no timer: an idle or half-sent request holds its
//! socket for as long as the client likes, and a few thousand of them take
//! the descriptors the libp2p listeners need. Here every connection has a
//! header deadline (hyper's `header_read_timeout`, which also ends an idle
//! keep-alive connection), and the number of connections is bounded in
//! total and per source prefix (an IPv4 address or an IPv6 /64). A
//! connection over a bound is closed at once, before anything is read.
//! A response the client stops reading fails once its writes have stalled
//! for the write deadline ([`WriteDeadline`]), so a slow reader cannot hold
//! a slot either.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use prometheus_client::metrics::gauge::Gauge;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};

use crate::{addresses::IpPrefix, refusals::Refusals, write_deadline::WriteDeadline};

/// How long a connection may take to finish its response once the relay
/// is shutting down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (e.g. `EMFILE`), so that a persistent
/// error does not spin a core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time to send a request's headers; also the idle keep-alive timeout.
    pub header_timeout: Duration,
    /// Longest a response's writes may stall (the client reads nothing).
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_prefix: usize,
}

/// The open connections, in total and per prefix.
#[derive(Debug)]
struct Table {
    limits: HttpLimits,
    total: usize,
    per_prefix: HashMap<IpPrefix, usize>,
}

/// One admitted connection; dropping it frees its slot.
#[derive(Debug)]
struct Slot {
    table: Arc<Mutex<Table>>,
    prefix: IpPrefix,
    gauge: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.total -= 1;
        if let Some(count) = table.per_prefix.get_mut(&self.prefix) {
            *count -= 1;
            if *count == 0 {
                table.per_prefix.remove(&self.prefix);
            }
        }
        self.gauge.dec();
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Total,
    PerPrefix,
}

fn admit(table: &Arc<Mutex<Table>>, prefix: IpPrefix, gauge: &Gauge) -> Result<Slot, Refused> {
    let mut guard = table.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.total >= guard.limits.max_connections {
        return Err(Refused::Total);
    }
    let max_per_prefix = guard.limits.max_connections_per_prefix;
    let count = guard.per_prefix.entry(prefix).or_default();
    if *count >= max_per_prefix {
        return Err(Refused::PerPrefix);
    }
    *count += 1;
    guard.total += 1;
    gauge.inc();
    Ok(Slot {
        table: table.clone(),
        prefix,
        gauge: gauge.clone(),
    })
}

/// One listening socket and what it serves: the page and API, or (plain
/// HTTP beside HTTPS) a redirect. With `tls`, every connection starts with
/// a TLS handshake, which must end within the header deadline.
pub struct HttpSocket {
    pub listener: TcpListener,
    pub router: Router,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for HttpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSocket")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Serves every socket's router until `stop` turns true, then lets the
/// open connections finish their responses (for [`SHUTDOWN_GRACE`]). The
/// connection bounds count all sockets together.
pub async fn serve(
    sockets: Vec<HttpSocket>,
    limits: HttpLimits,
    open_connections: Gauge,
    refusals: Refusals,
    stop: watch::Receiver<bool>,
) {
    let table = Arc::new(Mutex::new(Table {
        limits,
        total: 0,
        per_prefix: HashMap::new(),
    }));
    let mut accept_loops = JoinSet::new();
    for socket in sockets {
        accept_loops.spawn(accept_loop(
            socket,
            table.clone(),
            open_connections.clone(),
            refusals.clone(),
            stop.clone(),
        ));
    }
    while accept_loops.join_next().await.is_some() {}
}

async fn accept_loop(
    HttpSocket {
        listener,
        router,
        tls,
    }: HttpSocket,
    table: Arc<Mutex<Table>>,
    gauge: Gauge,
    refusals: Refusals,
    mut stop: watch::Receiver<bool>,
) {
    let limits = table.lock().unwrap_or_else(PoisonError::into_inner).limits;
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                refusals.refused("http-accept", || {
                    format!("cannot accept an HTTP connection: {error}")
                });
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let prefix = IpPrefix::of(remote.ip());
        let slot = match admit(&table, prefix, &gauge) {
            Ok(slot) => slot,
            Err(refused) => {
                refuse(&refusals, refused, remote, &table);
                continue; // Dropping `stream` closes it.
            }
        };
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(serve_connection(
            stream,
            tls.clone(),
            service,
            limits,
            slot,
            refusals.clone(),
            stop.clone(),
        ));
    }
    while connections.join_next().await.is_some() {}
}

fn refuse(refusals: &Refusals, refused: Refused, remote: SocketAddr, table: &Arc<Mutex<Table>>) {
    let limits = table.lock().unwrap_or_else(PoisonError::into_inner).limits;
    match refused {
        Refused::Total => refusals.refused("http-connections", || {
            format!(
                "HTTP connection from {remote} refused: {} connections open, the most there may be",
                limits.max_connections
            )
        }),
        Refused::PerPrefix => refusals.refused("http-connections-per-ip", || {
            format!(
                "HTTP connection from {remote} refused: {} already has {} connections open",
                IpPrefix::of(remote.ip()),
                limits.max_connections_per_prefix
            )
        }),
    };
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: TowerToHyperService<Router>,
    limits: HttpLimits,
    slot: Slot,
    refusals: Refusals,
    stop: watch::Receiver<bool>,
) {
    let remote = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    // Below TLS, so that a reader that stalls the handshake's writes is
    // given up on too.
    let stream = WriteDeadline::new(stream, limits.write_timeout);
    let served = match tls {
        None => serve_stream(stream, service, limits.header_timeout, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_stream(stream, service, limits.header_timeout, stop).await,
                Ok(Err(error)) => {
                    tracing::trace!(%error, "TLS handshake failed");
                    Ok(())
                }
                Err(_) => {
                    tracing::trace!("TLS handshake timed out");
                    Ok(())
                }
            }
        }
    };
    if let Err(error) = served {
        if write_stalled(&error) {
            refusals.refused("http-write-stalled", || {
                format!(
                    "HTTP connection from {remote:?} closed: it read nothing for {:?}",
                    limits.write_timeout
                )
            });
        }
        tracing::trace!(%error, "HTTP connection ended with an error");
    }
    drop(slot);
}

/// Serves HTTP/1.1 on `stream` until the client is done or `stop` is set.
async fn serve_stream<S>(
    stream: S,
    service: TowerToHyperService<Router>,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
            Ok(())
        }
    }
}

/// Whether a connection ended because [`WriteDeadline`] gave up on it.
fn write_stalled(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = error.source();
    }
    false
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize, per_prefix: usize) -> Arc<Mutex<Table>> {
        Arc::new(Mutex::new(Table {
            limits: HttpLimits {
                header_timeout: Duration::from_secs(1),
                write_timeout: Duration::from_secs(1),
                max_connections: max,
                max_connections_per_prefix: per_prefix,
            },
            total: 0,
            per_prefix: HashMap::new(),
        }))
    }

    fn prefix(ip: &str) -> IpPrefix {
        IpPrefix::of(ip.parse().expect("ip"))
    }

    #[test]
    fn connections_are_bounded_per_prefix_and_in_total_and_released_on_drop() {
        let table = table(3, 2);
        let gauge = Gauge::default();
        let a1 = admit(&table, prefix("192.0.2.1"), &gauge).expect("first");
        let _a2 = admit(&table, prefix("192.0.2.1"), &gauge).expect("second");
        assert_eq!(
            admit(&table, prefix("192.0.2.1"), &gauge).err(),
            Some(Refused::PerPrefix)
        );
        let _b1 = admit(&table, prefix("2001:db8::1"), &gauge).expect("another prefix");
        assert_eq!(
            admit(&table, prefix("192.0.2.9"), &gauge).err(),
            Some(Refused::Total)
        );
        assert_eq!(gauge.get(), 3);
        drop(a1);
        assert_eq!(gauge.get(), 2);
        assert!(admit(&table, prefix("192.0.2.1"), &gauge).is_ok());
    }
}
