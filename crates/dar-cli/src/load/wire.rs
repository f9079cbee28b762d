//! A minimal HTTPS/1.1 client on raw sockets, for the scenarios that must control
//! connections one by one (hold a thousand open, stall inside a request): connect only to
//! loopback, TLS with the local CA as the only root, `GET` and read one answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::LoadError;

/// The largest answer head read (the server's are well under 2 KiB).
const MAX_HEAD: usize = 16 * 1024;
/// The largest answer body read (the configuration document is about 1 KiB).
const MAX_BODY: usize = 256 * 1024;

/// The host and port of an `https://host:port` origin, refused unless the host is
/// `localhost` or a loopback address: the load tool sends nothing anywhere else.
///
/// # Errors
///
/// [`LoadError::NotLoopback`] for any other host, [`LoadError::BadOrigin`] when `origin` is
/// not `https://host:port`.
pub(crate) fn loopback_addr(origin: &str) -> Result<(String, SocketAddr), LoadError> {
    let bad = || LoadError::BadOrigin(origin.to_owned());
    let authority = origin.strip_prefix("https://").ok_or_else(bad)?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, rest) = rest.split_once(']').ok_or_else(bad)?;
            (host, rest.strip_prefix(':').ok_or_else(bad)?)
        }
        None => authority.rsplit_once(':').ok_or_else(bad)?,
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip = loopback_ip(host)?;
    Ok((host.to_owned(), SocketAddr::new(ip, port)))
}

/// The loopback address `host` names: `localhost` (as 127.0.0.1) or a loopback IP literal.
///
/// # Errors
///
/// [`LoadError::NotLoopback`] for any other host.
pub(crate) fn loopback_ip(host: &str) -> Result<IpAddr, LoadError> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        _ => Err(LoadError::NotLoopback(host.to_owned())),
    }
}

/// One server to connect to: its loopback address, its name for TLS and `Host`.
#[derive(Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    host_header: String,
    name: ServerName<'static>,
    connector: TlsConnector,
}

impl Target {
    /// The server at `origin` (loopback only), trusted through `ca_pem` alone.
    ///
    /// # Errors
    ///
    /// As [`loopback_addr`]; [`LoadError::Tls`] when the CA does not parse.
    pub(crate) fn new(origin: &str, ca_pem: &[u8]) -> Result<Self, LoadError> {
        let (host, addr) = loopback_addr(origin)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| LoadError::Tls(e.to_string()))?;
            roots.add(cert).map_err(|e| LoadError::Tls(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| LoadError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.clone()).map_err(|e| LoadError::Tls(e.to_string()))?;
        Ok(Self {
            addr,
            host_header: format!("{host}:{}", addr.port()),
            name,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// A TCP connection, no TLS yet.
    pub(crate) async fn tcp(&self) -> std::io::Result<TcpStream> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// A TLS connection.
    pub(crate) async fn connect(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = self.tcp().await?;
        self.connector.connect(self.name.clone(), tcp).await
    }

    /// The request head of `GET path` on a kept-alive connection.
    pub(crate) fn get_request(&self, path: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n\r\n",
            self.host_header
        )
    }

    /// The first bytes of a request whose headers never end (the slow-client scenario drips
    /// more header bytes after them).
    pub(crate) fn unfinished_request(&self, path: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nX-Slow: ",
            self.host_header
        )
    }
}

/// Sends `GET path` on `stream` and reads the whole answer; returns its status.
///
/// # Errors
///
/// An I/O error, or [`std::io::ErrorKind::InvalidData`] when the answer is not HTTP/1.1 this
/// reader understands.
pub(crate) async fn get<S>(stream: &mut S, request: &str) -> std::io::Result<u16>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    read_answer(stream).await
}

/// Reads one HTTP/1.1 answer (a `Content-Length` or chunked body) and returns its status.
async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<u16> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head = loop {
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        if buf.len() > MAX_HEAD {
            return Err(invalid("answer head too long"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let mut body = buf.split_off(head.len);
    match head.body {
        Body::Length(len) => {
            if len > MAX_BODY {
                return Err(invalid("answer body too long"));
            }
            while body.len() < len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                body.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
        }
        Body::Chunked => {
            // The server's chunked bodies end with the last-chunk and no trailers.
            while !body.ends_with(b"0\r\n\r\n") {
                if body.len() > MAX_BODY {
                    return Err(invalid("answer body too long"));
                }
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                body.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
        }
    }
    Ok(head.status)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// `Content-Length` bytes (0 when the header is absent).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// An answer's status line and headers, as far as this reader needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// The status code.
    pub(crate) status: u16,
    /// The head's length in bytes, blank line included.
    pub(crate) len: usize,
    /// The body's delimitation.
    pub(crate) body: Body,
}

/// Parses the answer head at the start of `buf`; `None` while the blank line has not arrived.
///
/// # Errors
///
/// [`std::io::ErrorKind::InvalidData`] when the head is not an HTTP/1.1 answer.
pub(crate) fn parse_head(buf: &[u8]) -> std::io::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(buf.get(..end).unwrap_or_default())
        .map_err(|_| invalid("answer head is not text"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid("not an HTTP/1.1 status line"))?;
    let mut body = Body::Length(0);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid("malformed header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let len = value
                .parse()
                .map_err(|_| invalid("malformed Content-Length"))?;
            body = Body::Length(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            body = Body::Chunked;
        }
    }
    Ok(Some(Head {
        status,
        len: end + 4,
        body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_targets() {
        assert_eq!(
            loopback_addr("https://localhost:8443").unwrap(),
            ("localhost".to_owned(), "127.0.0.1:8443".parse().unwrap())
        );
        assert_eq!(
            loopback_addr("https://127.0.0.2:1").unwrap().1,
            "127.0.0.2:1".parse().unwrap()
        );
        assert_eq!(
            loopback_addr("https://[::1]:443").unwrap().1,
            "[::1]:443".parse().unwrap()
        );
        for (origin, host) in [
            ("https://example.com:443", "example.com"),
            ("https://10.0.0.1:443", "10.0.0.1"),
            ("https://[2001:db8::1]:443", "2001:db8::1"),
            ("https://localhost.example.com:443", "localhost.example.com"),
            ("https://0.0.0.0:443", "0.0.0.0"),
        ] {
            match loopback_addr(origin) {
                Err(LoadError::NotLoopback(h)) => assert_eq!(h, host),
                other => panic!("{origin}: {other:?}"),
            }
        }
        for origin in [
            "http://127.0.0.1:80",
            "https://127.0.0.1",
            "https://[::1:443",
        ] {
            assert!(
                matches!(loopback_addr(origin), Err(LoadError::BadOrigin(o)) if o == origin),
                "{origin}"
            );
        }
    }

    #[test]
    fn parses_answer_heads() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        assert_eq!(
            parse_head(b"HTTP/1.1 303 See Other\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n")
                .unwrap(),
            Some(Head {
                status: 303,
                len: 59,
                body: Body::Length(0)
            })
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello")
                .unwrap()
                .map(|h| (h.body, h.len)),
            Some((Body::Chunked, 47))
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n")
                .unwrap()
                .map(|h| h.body),
            Some(Body::Length(12))
        );
        for bad in [
            &b"HTTP/1.0 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        ] {
            let e = parse_head(bad).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        }
    }

    #[tokio::test]
    async fn reads_a_whole_answer_and_no_more() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut req = [0u8; 256];
            let n = server.read(&mut req).await.unwrap();
            assert!(req[..n].starts_with(b"GET /x HTTP/1.1\r\n"));
            server
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nnope!")
                .await
                .unwrap();
        });
        let status = get(&mut client, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(status, 404);
    }
}
