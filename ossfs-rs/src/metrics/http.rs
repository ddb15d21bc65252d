//! The metrics endpoint (`-o metrics=127.0.0.1:PORT`), hand-written.
//!
//! [`serve`] answers any HTTP request on its socket with the text
//! exposition of [`METRICS`]; it is meant for a loopback address and never
//! exposes anything but these numbers (no keys, no paths). Whatever the
//! request asks, the answer is the same, so there is no HTTP library here:
//! read the head, write one reply, close.
//!
//! Imports: `super::registry`.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

use super::registry::METRICS;

/// Serve the exposition on `addr` until the runtime ends. Binding errors
/// are returned; per-connection errors are logged at debug level.
pub async fn serve(addr: SocketAddr) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        loop {
            let (mut conn, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                // Read the request head (whatever it asks, the answer is the same).
                let mut head = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = METRICS.render();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if let Err(e) = conn.write_all(reply.as_bytes()).await {
                    debug!(error = %e, "metrics endpoint: write failed");
                }
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::defs::STORE_REQUESTS;

    #[tokio::test]
    async fn serves_the_exposition_over_http() -> std::io::Result<()> {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = probe.local_addr()?;
        drop(probe);
        let task = serve(addr).await?;
        let mut c = tokio::net::TcpStream::connect(addr).await?;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut reply = String::new();
        c.read_to_string(&mut reply).await?;
        assert!(reply.starts_with("HTTP/1.1 200 OK"));
        assert!(reply.contains(STORE_REQUESTS.name));
        task.abort();
        Ok(())
    }
}
