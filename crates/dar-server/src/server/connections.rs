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

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::security::client_key;

/// Open connections per client key.
#[derive(Debug, Default)]
struct Counts(Mutex<HashMap<IpAddr, usize>>);

/// The acceptor: sets `TCP_NODELAY` (see [`crate::start`]) and admits a connection only while
/// its client holds fewer than the cap.
#[derive(Debug, Clone)]
pub(crate) struct PerAddressLimit {
    counts: Arc<Counts>,
    max: usize,
    exempt: Arc<[IpAddr]>,
}

impl PerAddressLimit {
    /// At most `max` connections per client; `exempt` addresses are not counted.
    pub(crate) fn new(max: usize, exempt: &[IpAddr]) -> Self {
        Self {
            counts: Arc::default(),
            max,
            exempt: exempt.into(),
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

/// An admitted connection: the TCP stream and its slot.
#[derive(Debug)]
pub(crate) struct Counted {
    stream: TcpStream,
    _slot: Option<Slot>,
}

impl<S> Accept<TcpStream, S> for PerAddressLimit {
    type Stream = Counted;
    type Service = S;
    type Future = Ready<io::Result<(Counted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        ready(self.admit_stream(stream).map(|counted| (counted, service)))
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
        Ok(Counted {
            stream,
            _slot: slot,
        })
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
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
        let limit = PerAddressLimit::new(2, &[]);
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
        let limit = PerAddressLimit::new(1, &[]);
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
        let limit = PerAddressLimit::new(1, &[proxy]);
        let held: Vec<_> = (0..10).map(|_| limit.admit(proxy).unwrap()).collect();
        assert!(held.iter().all(Option::is_none), "no slot taken");
        assert_eq!(limit.open(proxy), 0);
    }
}
