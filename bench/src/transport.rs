//! The byte stream under a client's MQTT session: plain TCP, TLS (`--ssl`), MQTT over WebSocket
//! (`--ws`), or WebSocket over TLS (both).
//!
//! Everything is built on glommio's `TcpStream`, which implements futures-io's `AsyncRead` and
//! `AsyncWrite`, so futures-rustls and async-tungstenite run on it directly. Plain TCP stays the
//! fast path: reads go straight to the socket and its socket read timeout makes the periodic
//! `TimedOut` the client's read loop relies on. TLS and WebSocket cannot take an error in the middle
//! of a record or frame (async-tungstenite ends the stream on any I/O error), so for them the
//! socket has no read timeout and `Transport` makes the tick itself with a timer beside the read.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::{ByteReader, ByteWriter, WebSocketReceiver, WebSocketSender};
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::Future;
use futures_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use futures_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use futures_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use futures_rustls::TlsConnector;
use glommio::net::TcpStream;
use glommio::timer::Timer;

/// TCP, or TLS over TCP: what a WebSocket runs on.
pub enum Base {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large and this enum is moved around).
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

/// A connected client stream.
pub enum Transport {
    /// TCP or TLS.
    Base {
        /// The stream.
        inner: Base,
        /// Read tick for TLS (`None` for TCP, whose socket times reads out itself).
        tick: Option<Tick>,
    },
    /// MQTT over WebSocket: every write is one binary message; reads hand out message bytes.
    Ws {
        /// Receiving half.
        reader: ByteReader<WebSocketReceiver<Base>>,
        /// Sending half.
        writer: ByteWriter<WebSocketSender<Base>>,
        /// Read tick.
        tick: Tick,
    },
}

/// A read that has waited `every` without data ends with `TimedOut`, as a socket read timeout would.
pub struct Tick {
    every: Duration,
    timer: Option<Timer>,
}

impl Tick {
    /// A tick of `every`.
    pub fn new(every: Duration) -> Tick {
        Tick { every, timer: None }
    }

    /// Polls `read`; when it is pending, polls the timer that bounds it.
    fn poll<T>(&mut self, cx: &mut Context<'_>, read: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if read.is_ready() {
            self.timer = None;
            return read;
        }
        let every = self.every;
        let timer = self.timer.get_or_insert_with(|| Timer::new(every));
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => {
                self.timer = None;
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "read tick")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Base {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Base::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Base::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Base {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Base::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Base::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Base::Tcp(s) => Pin::new(s).poll_flush(cx),
            Base::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Base::Tcp(s) => Pin::new(s).poll_close(cx),
            Base::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Base { inner, tick: None } => Pin::new(inner).poll_read(cx, buf),
            Transport::Base { inner, tick: Some(tick) } => {
                let r = Pin::new(inner).poll_read(cx, buf);
                tick.poll(cx, r)
            }
            Transport::Ws { reader, tick, .. } => {
                let r = Pin::new(reader).poll_read(cx, buf);
                tick.poll(cx, r)
            }
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Base { inner, .. } => Pin::new(inner).poll_write(cx, buf),
            Transport::Ws { writer, .. } => Pin::new(writer).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Base { inner, .. } => Pin::new(inner).poll_flush(cx),
            Transport::Ws { writer, .. } => Pin::new(writer).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Base { inner, .. } => Pin::new(inner).poll_close(cx),
            Transport::Ws { writer, .. } => Pin::new(writer).poll_close(cx),
        }
    }
}

/// How clients reach the broker beyond TCP: built once per run and shared by every client.
#[derive(Clone, Default)]
pub struct Wrap {
    /// TLS client configuration (`--ssl`).
    pub tls: Option<Arc<ClientConfig>>,
    /// MQTT over WebSocket (`--ws`).
    pub ws: bool,
}

impl std::fmt::Debug for Wrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wrap").field("tls", &self.tls.is_some()).field("ws", &self.ws).finish()
    }
}

impl Wrap {
    /// Whether the stream is plain TCP.
    pub fn is_plain(&self) -> bool {
        self.tls.is_none() && !self.ws
    }

    /// Runs the TLS and WebSocket handshakes over a connected TCP stream. `host` names the broker
    /// for certificate checks and the WebSocket `Host` header; `port` completes the URL.
    pub async fn wrap(&self, tcp: TcpStream, host: &str, port: u16, tick: Duration) -> io::Result<Transport> {
        let base = match &self.tls {
            None => Base::Tcp(tcp),
            Some(cfg) => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("`{host}` as TLS server name: {e}")))?;
                let tls = TlsConnector::from(cfg.clone()).connect(name, tcp).await?;
                Base::Tls(Box::new(tls))
            }
        };
        if !self.ws {
            let tick = self.tls.is_some().then(|| Tick::new(tick));
            return Ok(Transport::Base { inner: base, tick });
        }
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let url = if host.contains(':') { format!("{scheme}://[{host}]:{port}/mqtt") } else { format!("{scheme}://{host}:{port}/mqtt") };
        let mut req = url.into_client_request().map_err(io::Error::other)?;
        // MQTT over WebSocket requires the "mqtt" subprotocol (MQTT 5.0 section 6).
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        let (ws, _resp) = async_tungstenite::client_async(req, base).await.map_err(io::Error::other)?;
        let (sender, receiver) = ws.split();
        Ok(Transport::Ws { reader: ByteReader::new(receiver), writer: ByteWriter::new(sender), tick: Tick::new(tick) })
    }
}

/// Builds the TLS client configuration from `--cacertfile`, `--certfile` and `--keyfile`.
/// Without a CA file the broker's certificate is not checked (as emqtt-bench does by default: a load
/// tool measures, it does not guard secrets).
///
/// # Errors
///
/// A file cannot be read or holds no usable certificate or key.
pub fn tls_config(cacert: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let builder = match cacert {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(path)? {
                roots.add(c).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider))),
    };
    let config = match (cert, key) {
        (Some(c), Some(k)) => {
            let key = PrivateKeyDer::from_pem_file(k).map_err(|e| format!("--keyfile {}: {e}", k.display()))?;
            builder.with_client_auth_cert(read_certs(c)?, key).map_err(|e| format!("--certfile/--keyfile: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--certfile and --keyfile go together".into()),
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_reader_iter(BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Accepts any server certificate (signatures are still checked, so the handshake is real TLS).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, futures_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, futures_rustls::rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, futures_rustls::rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
