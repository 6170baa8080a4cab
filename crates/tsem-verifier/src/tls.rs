//! TLS for the verifier (rustls, ring provider): the server's certificate and key, the client's
//! trusted CA, and (feature `server`) a listener that hands axum only connections whose
//! handshake completed, doing handshakes concurrently so a slow client delays nobody else.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate, key or CA that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("{path}: {msg}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(path: &Path, msg: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate (PEM) in the file"));
    }
    Ok(certs)
}

/// The server's configuration from a certificate chain and its private key (PEM), HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}

/// A client configuration trusting exactly the CA certificates in `ca` (PEM).
pub fn client_config(ca: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c).map_err(|e| pem_error(ca, e))?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(feature = "server")]
pub(crate) use listener::TlsListener;

#[cfg(feature = "server")]
mod listener {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::server::TlsStream;

    /// A handshake that has not finished by then is dropped.
    const HANDSHAKE: Duration = Duration::from_secs(10);

    /// Accepts TCP connections, completes TLS handshakes in tasks of their own, and yields the
    /// finished ones.
    pub(crate) struct TlsListener {
        rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
        local: SocketAddr,
        task: tokio::task::JoinHandle<()>,
    }

    impl TlsListener {
        pub(crate) fn new(
            tcp: TcpListener,
            config: Arc<rustls::ServerConfig>,
        ) -> std::io::Result<Self> {
            let local = tcp.local_addr()?;
            let acceptor = TlsAcceptor::from(config);
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            let task = tokio::spawn(async move {
                loop {
                    let (sock, peer) = match tcp.accept().await {
                        Ok(x) => x,
                        Err(_) => {
                            // Out of file descriptors and the like: back off, as axum does.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    tokio::spawn(async move {
                        if let Ok(Ok(tls)) =
                            tokio::time::timeout(HANDSHAKE, acceptor.accept(sock)).await
                        {
                            let _ = tx.send((tls, peer)).await;
                        }
                    });
                }
            });
            Ok(Self { rx, local, task })
        }
    }

    impl Drop for TlsListener {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl axum::serve::Listener for TlsListener {
        type Io = TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            match self.rx.recv().await {
                Some(x) => x,
                // The acceptor task is gone only when we are being dropped.
                None => std::future::pending().await,
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            Ok(self.local)
        }
    }
}
