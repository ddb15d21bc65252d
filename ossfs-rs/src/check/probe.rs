//! The endpoint step's network probe: resolve the host the client will
//! connect to and open a TCP connection with a timeout, telling a DNS
//! failure, a DNS timeout, a refusal and a connection timeout apart, and
//! the advice for an unreachable endpoint.
//!
//! Imports: `config` ([`Endpoint`]) and tokio; no store call.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::plan::Endpoint;

/// Why the endpoint could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The host name did not resolve.
    Dns { host: String, detail: String },
    /// The DNS answer took longer than the timeout.
    DnsTimeout { host: String, after: Duration },
    /// Something answered with a refusal (nothing listens on the port).
    Refused { addr: SocketAddr },
    /// No answer within the timeout (firewall, wrong network).
    Timeout { addr: SocketAddr, after: Duration },
    /// Any other connection error (network unreachable, ...).
    Other { addr: SocketAddr, detail: String },
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Dns { host, detail } => {
                write!(f, "the host name {host} does not resolve (DNS: {detail})")
            }
            ProbeError::DnsTimeout { host, after } => {
                write!(f, "no DNS answer for {host} within {}s", after.as_secs())
            }
            ProbeError::Refused { addr } => {
                write!(f, "{addr} refused the connection (nothing listens there)")
            }
            ProbeError::Timeout { addr, after } => {
                write!(f, "no answer from {addr} within {}s", after.as_secs())
            }
            ProbeError::Other { addr, detail } => write!(f, "cannot connect to {addr}: {detail}"),
        }
    }
}

/// Resolve `host` and open a TCP connection to `port`, trying each address
/// in turn; the first that connects wins, else the last error is returned.
pub async fn probe_tcp(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, ProbeError> {
    let addrs = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => {
            return Err(ProbeError::DnsTimeout {
                host: host.to_string(),
                after: timeout,
            });
        }
        Ok(Err(e)) => {
            return Err(ProbeError::Dns {
                host: host.to_string(),
                detail: e.to_string(),
            });
        }
        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
    };
    let mut last = ProbeError::Dns {
        host: host.to_string(),
        detail: "no address".to_string(),
    };
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_stream)) => return Ok(addr),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                last = ProbeError::Refused { addr };
            }
            Ok(Err(e)) => {
                last = ProbeError::Other {
                    addr,
                    detail: e.to_string(),
                };
            }
            Err(_) => {
                last = ProbeError::Timeout {
                    addr,
                    after: timeout,
                };
            }
        }
    }
    Err(last)
}

/// The advice for an unreachable endpoint.
pub fn unreachable_fix(endpoint: &Endpoint) -> String {
    let mut fix = format!(
        "check --url (scheme, host and port), that no firewall blocks this host from {}:{}, and that this host has a route there; `-internal` endpoints only work from inside the same cloud region",
        endpoint.host, endpoint.port
    );
    if endpoint.is_internal() {
        fix.push_str(
            " (this is an `-internal` endpoint: from outside the region use the public one, without `-internal`)",
        );
    }
    fix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_advice_mentions_internal_endpoints() {
        let e = Endpoint::parse("oss-cn-hangzhou-internal.aliyuncs.com").expect("ok");
        let fix = unreachable_fix(&e);
        assert!(fix.contains("--url") && fix.contains("firewall"));
        assert!(fix.contains("without `-internal`"), "{fix}");
        let e = Endpoint::parse("http://127.0.0.1:1").expect("ok");
        assert!(!unreachable_fix(&e).contains("without `-internal`"));
    }

    #[test]
    fn probe_messages_are_plain() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let s = ProbeError::Dns {
            host: "oss-xx.aliyuncs.com".to_string(),
            detail: "failed to lookup address information".to_string(),
        }
        .to_string();
        assert!(s.contains("does not resolve") && s.contains("oss-xx.aliyuncs.com"));
        assert!(ProbeError::Refused { addr }.to_string().contains("refused"));
        let s = ProbeError::Timeout {
            addr,
            after: Duration::from_secs(5),
        }
        .to_string();
        assert!(s.contains("no answer") && s.contains("5s"), "{s}");
    }

    #[tokio::test]
    async fn probe_connects_and_sees_refusal_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let addr = probe_tcp("127.0.0.1", port, Duration::from_secs(5))
            .await
            .expect("reachable");
        assert_eq!(addr.port(), port);
        drop(listener);
        match probe_tcp("127.0.0.1", port, Duration::from_secs(5)).await {
            Err(ProbeError::Refused { addr }) => assert_eq!(addr.port(), port),
            other => panic!("expected Refused, got {other:?}"),
        }
    }
}
