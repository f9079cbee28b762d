//! A cap on the connections one client may hold open at once (`[limits]
//! connections_per_address`).
//!
//! The client timeout closes a connection that sends nothing; this bounds the ones that do
//! just enough, or that answer HTTP/2 pings while sending nothing (hyper has no HTTP/2 idle
//! timeout): one address cannot take more than its share of the process's file descriptors
//! and memory (about 30 KiB per TLS connection, `docs/load.md`). A connection over the cap is
//! closed as soon as it is accepted, before TLS, so it costs a descriptor for microseconds.
//!
//! IPv4 clients are counted by address, IPv6 clients by /64 prefix (one host usually holds a
//! whole /64). The trusted reverse proxies of `[limits] trusted_proxies` are not counted:
//! their connections carry many clients.
//!
//! The same acceptor closes a connection that has had no request in progress for the client
//! timeout (`[limits] client_timeout_secs`): hyper bounds an HTTP/1.1 connection's idle time
//! but not an HTTP/2 one's, whose client may answer the server's pings for ever while asking
//! nothing. The connection's service counts its requests in progress; its stream, while there
//! are none, fails its next read once the idle time is up, which ends the connection.

use std::collections::HashMap;
use std::future::{Future, Ready, ready};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::security::client_key;

/// Open connections per client key.
#[derive(Debug, Default)]
struct Counts(Mutex<HashMap<IpAddr, usize>>);

/// The acceptor: sets `TCP_NODELAY` (see [`crate::start`]), admits a connection only while
/// its client holds fewer than the cap, and closes it after `idle` without a request.
#[derive(Debug, Clone)]
pub(crate) struct PerAddressLimit {
    counts: Arc<Counts>,
    max: usize,
    exempt: Arc<[IpAddr]>,
    idle: Duration,
}

impl PerAddressLimit {
    /// At most `max` connections per client; `exempt` addresses are not counted; a connection
    /// with no request in progress for `idle` is closed.
    pub(crate) fn new(max: usize, exempt: &[IpAddr], idle: Duration) -> Self {
        Self {
            counts: Arc::default(),
            max,
            exempt: exempt.into(),
            idle,
        }
    }

    /// A slot for a connection from `ip`, or `None` when its client is at the cap.
    fn admit(&self, ip: IpAddr) -> Option<Option<Slot>> {
        if self.exempt.contains(&ip) {
            return Some(None);
        }
        let key = client_key(ip);
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        let open = counts.entry(key).or_insert(0);
        if *open >= self.max {
            return None;
        }
        *open += 1;
        Some(Some(Slot {
            counts: Arc::clone(&self.counts),
            key,
        }))
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&client_key(ip)).copied().unwrap_or(0)
    }
}

/// One admitted connection's place in the count, given back when the connection is dropped.
#[derive(Debug)]
struct Slot {
    counts: Arc<Counts>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = counts.get_mut(&self.key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The requests in progress on one connection and when the last one ended (or the connection
/// was accepted), shared by its stream and its service.
#[derive(Debug)]
struct Activity {
    in_progress: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_progress: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    /// When the connection will have been idle for `idle`, or `None` while a request is in
    /// progress.
    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(*self.last.lock().unwrap_or_else(PoisonError::into_inner) + idle)
    }
}

/// A request in progress; its end is the connection's latest activity.
struct InProgress(Arc<Activity>);

impl InProgress {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_progress.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An admitted connection: the TCP stream, its slot, and its idle timer.
#[derive(Debug)]
pub(crate) struct Counted {
    stream: TcpStream,
    _slot: Option<Slot>,
    activity: Arc<Activity>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

/// The connection's service, counting the requests in progress.
#[derive(Debug, Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let in_progress = InProgress::start(&self.activity);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(in_progress);
            response
        })
    }
}

impl<S> Accept<TcpStream, S> for PerAddressLimit {
    type Stream = Counted;
    type Service = Tracked<S>;
    type Future = Ready<io::Result<(Counted, Tracked<S>)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        ready(self.admit_stream(stream).map(|counted| {
            let service = Tracked {
                inner: service,
                activity: Arc::clone(&counted.activity),
            };
            (counted, service)
        }))
    }
}

impl PerAddressLimit {
    fn admit_stream(&self, stream: TcpStream) -> io::Result<Counted> {
        let peer = stream.peer_addr()?.ip();
        let Some(slot) = self.admit(peer) else {
            tracing::debug!(%peer, max = self.max, "connection refused: too many from this client");
            return Err(io::Error::other("too many connections from one client"));
        };
        stream.set_nodelay(true)?;
        let activity = Arc::new(Activity::new());
        Ok(Counted {
            stream,
            _slot: slot,
            timer: Box::pin(tokio::time::sleep(self.idle)),
            activity,
            idle: self.idle,
        })
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // The timer is polled (so that it wakes the connection) only while it is idle.
        if let Some(deadline) = this.activity.idle_deadline(this.idle) {
            if this.timer.deadline() != deadline {
                this.timer.as_mut().reset(deadline);
            }
            if this.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request within the client timeout",
                )));
            }
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_is_admitted_up_to_the_cap_and_again_when_one_closes() {
        let limit = PerAddressLimit::new(2, &[], Duration::from_secs(10));
        let first = limit.admit(ip("192.0.2.1")).unwrap();
        let second = limit.admit(ip("192.0.2.1")).unwrap();
        assert!(first.is_some() && second.is_some());
        assert!(limit.admit(ip("192.0.2.1")).is_none(), "over the cap");
        // Another client is counted on its own.
        assert!(limit.admit(ip("192.0.2.2")).unwrap().is_some());
        drop(first);
        assert_eq!(limit.open(ip("192.0.2.1")), 1);
        let third = limit.admit(ip("192.0.2.1")).unwrap();
        assert!(third.is_some());
        drop((second, third));
        assert_eq!(limit.open(ip("192.0.2.1")), 0);
        assert!(
            limit.counts.0.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        let limit = PerAddressLimit::new(1, &[], Duration::from_secs(10));
        let _held = limit.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(
            limit.admit(ip("2001:db8:1:2:ffff::9")).is_none(),
            "same /64"
        );
        assert!(limit.admit(ip("2001:db8:1:3::1")).unwrap().is_some());
        let _v4 = limit.admit(ip("198.51.100.7")).unwrap();
        assert!(limit.admit(ip("::ffff:198.51.100.7")).is_none());
    }

    #[test]
    fn trusted_proxies_are_not_counted() {
        let proxy = ip("10.0.0.2");
        let limit = PerAddressLimit::new(1, &[proxy], Duration::from_secs(10));
        let held: Vec<_> = (0..10).map(|_| limit.admit(proxy).unwrap()).collect();
        assert!(held.iter().all(Option::is_none), "no slot taken");
        assert_eq!(limit.open(proxy), 0);
    }
}
