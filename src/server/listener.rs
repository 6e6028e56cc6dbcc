//! The gRPC listener: TCP, or a Unix domain socket for a sidecar deployment (Envoy and Warrant
//! in one pod or on one host, the authz channel never on the network).
//!
//! A Unix socket file left by a previous run that no process listens on is replaced; a live
//! socket (another Warrant) or a path that is not a socket is refused. The socket is created
//! with mode 0660 — owner and group may connect: run Envoy in Warrant's group (or as its
//! user) — and removed when the server stops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::TcpListener;

use super::ServerError;
use crate::config::Listen;

/// The socket file's permissions: read and write (connect) for owner and group.
pub const SOCKET_MODE: u32 = 0o660;

/// A bound gRPC listener.
#[derive(Debug)]
pub enum GrpcListener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix domain socket listener and its socket file, removed when the server stops.
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, PathBuf),
}

impl GrpcListener {
    /// Binds `listen`.
    pub async fn bind(listen: &Listen) -> Result<Self, ServerError> {
        match listen {
            Listen::Tcp(addr) => TcpListener::bind(addr)
                .await
                .map(GrpcListener::Tcp)
                .map_err(|reason| ServerError::Bind {
                    addr: listen.to_string(),
                    reason,
                }),
            #[cfg(unix)]
            Listen::Unix(path) => bind_unix(path).map(|l| GrpcListener::Unix(l, path.clone())),
            #[cfg(not(unix))]
            Listen::Unix(_) => Err(ServerError::Bind {
                addr: listen.to_string(),
                reason: std::io::Error::other("Unix sockets need a Unix system"),
            }),
        }
    }

    /// The TCP address, when it is TCP (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            GrpcListener::Tcp(listener) => listener.local_addr().ok(),
            #[cfg(unix)]
            GrpcListener::Unix(..) => None,
        }
    }

    /// Where it listens, for logs.
    pub fn describe(&self) -> String {
        match self {
            GrpcListener::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|_| "tcp".to_owned(), |a| a.to_string()),
            #[cfg(unix)]
            GrpcListener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

#[cfg(unix)]
fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, ServerError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let refuse = |reason: String| ServerError::Bind {
        addr: format!("unix:{}", path.display()),
        reason: std::io::Error::other(reason),
    };
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(refuse(
                "the path exists and is not a socket; refusing to replace it".to_owned(),
            ));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            // Nobody listens: a stale socket from an earlier run.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Ok(_) => {
                return Err(refuse(
                    "another process is listening on this socket".to_owned(),
                ));
            }
            Err(e) => {
                return Err(refuse(format!(
                    "cannot tell whether another process listens on this socket ({e}); refusing to replace it"
                )));
            }
        }
        // A stale socket from a previous run.
        std::fs::remove_file(path)
            .map_err(|e| refuse(format!("cannot remove the stale socket: {e}")))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|reason| ServerError::Bind {
        addr: format!("unix:{}", path.display()),
        reason,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| refuse(format!("cannot set the socket's mode: {e}")))?;
    Ok(listener)
}

/// Removes the socket file of a Unix listener (when the server stops).
pub fn remove_socket(path: Option<&Path>) {
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
}

/// The path of a Unix listener's socket.
pub fn socket_path(listener: &GrpcListener) -> Option<PathBuf> {
    match listener {
        GrpcListener::Tcp(_) => None,
        #[cfg(unix)]
        GrpcListener::Unix(_, path) => Some(path.clone()),
    }
}

/// Accepts plaintext TCP connections on `listener` (no delay on them), backing off after an
/// accept error (out of file descriptors, say) instead of spinning, until the returned
/// receiver is dropped.
pub fn accept_tcp(
    listener: TcpListener,
) -> tokio::sync::mpsc::Receiver<Result<tokio::net::TcpStream, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    if tx.send(Ok(stream)).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    rx
}
