//! Connection setup shared by subscribers and publishers: the server endpoint, TCP connects bound
//! to a chosen loopback source address, and the rustls (ring) client configuration. Holds no
//! per-connection state.
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

use crate::cli::Args;

/// Where the server is and how to speak to it.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `Host` header / `:authority` value.
    pub authority: String,
    pub tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

impl Endpoint {
    /// `alpn`: protocols offered over TLS (`h2` or `http/1.1`).
    pub fn new(args: &Args, alpn: &[u8]) -> Result<Self, String> {
        let uri: http::Uri = args
            .url
            .parse()
            .map_err(|e| format!("--url {:?}: {e}", args.url))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--url {:?} has no host", args.url))?
            .to_string();
        let host = uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']);
        let port = uri
            .port_u16()
            .unwrap_or(if args.is_tls() { 443 } else { 80 });
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("--url host {host:?}: {e}"))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| format!("--url host {host:?}: no IPv4 address"))?;
        let tls = if args.is_tls() {
            let mut roots = rustls::RootCertStore::empty();
            let ca = args.ca.as_deref().ok_or("--tls needs --ca <pem>")?;
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("--ca {ca}: {e}"))? {
                let cert = cert.map_err(|e| format!("--ca {ca}: {e}"))?;
                roots.add(cert).map_err(|e| format!("--ca {ca}: {e}"))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self {
            addr,
            authority,
            tls,
        })
    }

    /// Opens a TCP connection from source address 127.0.0.(1 + `source` mod K) (loopback
    /// targets only; other targets use the default route) and wraps it in TLS when configured.
    pub async fn connect(&self, source: u64, source_ips: u8) -> io::Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        if self.addr.ip().is_loopback() {
            let last = 1 + (source % u64::from(source_ips.max(1))) as u8;
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        // A reset on close leaves no TIME_WAIT behind, so repeated runs do not exhaust ports.
        socket.set_zero_linger()?;
        socket.set_nodelay(true)?;
        let tcp = socket.connect(self.addr).await?;
        match &self.tls {
            None => Ok(Conn::Plain(tcp)),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await?;
                Ok(Conn::Tls(Box::new(tls)))
            }
        }
    }
}

/// A plain or TLS client stream.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Raises the soft open-files limit to the hard one; returns (soft, hard) afterwards.
pub fn raise_nofile() -> (Option<u64>, Option<u64>) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
    let now = getrlimit(Resource::Nofile);
    (now.current, now.maximum)
}

/// Wall clock in Unix nanoseconds (publisher and subscribers share the host clock).
pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
