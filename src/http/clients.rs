//! Who a client is, and how much one client may hold at once.
//!
//! A client is the peer address of its connection, except behind a
//! `--trusted-proxy`, where it is the address that proxy wrote into
//! `X-Forwarded-For` (the de facto header that RFC 7239 §5.2 standardises
//! as `Forwarded: for=`). An IPv6 client is its /64: one host gets a whole
//! /64, so counting single IPv6 addresses would cap nothing.
//!
//! Two caps are counted per client:
//! - connections ([`Admission`], checked when a connection is accepted:
//!   over the per-client cap it is answered 429, over the global ceiling
//!   503, and closed; see `server.rs`);
//! - long-lived requests ([`ClientSlots`]: blocking playlist reloads and
//!   WebSockets take a slot for as long as they wait; over the cap, 429
//!   with `Retry-After`, RFC 6585 §4).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, CLIENT_RETRY_AFTER_S, FULL_RETRY_AFTER_S};
use base::Error;

use super::error::ApiError;

/// The address a client's requests are counted under: IPv4 as is, an
/// IPv4-mapped IPv6 address as its IPv4, IPv6 as its /64 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl From<IpAddr> for ClientKey {
    fn from(addr: IpAddr) -> Self {
        match canonical(addr) {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
            v4 => Self(v4),
        }
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4
/// peer) as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address of a request, as an extractor: the peer address,
/// or `X-Forwarded-For`'s when the peer is a trusted proxy. The server
/// puts it in every request's extensions (beside axum's
/// `ConnectInfo<SocketAddr>`, the peer itself); a request built in a test
/// must insert one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Self>().copied().ok_or_else(|| {
            Error::internal(
                "client address",
                "the request has no ClientAddr extension (not served by segcast::serve?)",
            )
            .into()
        })
    }
}

/// The addresses whose `X-Forwarded-For` is believed and that carry many
/// clients: `--trusted-proxy`, and in a cluster the other nodes (which
/// hand each other their viewers' requests, see `forward`), kept current
/// from the catalog's leases.
#[derive(Debug, Default)]
pub struct Trusted {
    fixed: Vec<IpAddr>,
    nodes: std::sync::RwLock<Vec<IpAddr>>,
}

impl Trusted {
    pub fn new(fixed: Vec<IpAddr>) -> Self {
        Self {
            fixed: fixed.into_iter().map(canonical).collect(),
            nodes: Default::default(),
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.fixed.contains(&addr) || self.nodes.read().expect("lock").contains(&addr)
    }

    /// The cluster's nodes' addresses now.
    pub fn set_nodes(&self, nodes: Vec<IpAddr>) {
        *self.nodes.write().expect("lock") = nodes.into_iter().map(canonical).collect();
    }
}

/// The client behind a request from `peer`. Only a trusted proxy's
/// `X-Forwarded-For` is read, from the right: each proxy appends the
/// address it received from, so the rightmost entry that is not itself a
/// trusted proxy is the first one that no client could have forged.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &Trusted) -> IpAddr {
    let is_trusted = |addr: IpAddr| trusted.contains(addr);
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    for hop in hops.iter().rev() {
        match parse_hop(hop.trim()) {
            Some(addr) if is_trusted(addr) => continue,
            Some(addr) => return canonical(addr),
            // Garbage: nothing left of it can be trusted.
            None => return peer,
        }
    }
    peer
}

/// One `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// Counts what each client holds, up to `cap` each.
#[derive(Debug)]
struct PerClient {
    cap: usize,
    held: Mutex<HashMap<ClientKey, usize>>,
}

/// One unit held by one client; given back when dropped.
#[derive(Debug)]
struct Held {
    owner: Arc<PerClient>,
    key: ClientKey,
}

impl PerClient {
    fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            held: Mutex::new(HashMap::new()),
        })
    }

    fn try_take(self: &Arc<Self>, key: ClientKey) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(key).or_insert(0);
        if *count >= self.cap {
            if *count == 0 {
                held.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(Held {
            owner: self.clone(),
            key,
        })
    }

    fn count(&self, key: ClientKey) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&key).copied().unwrap_or(0)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// Per-client slots for long-lived requests. A handler that waits (a
/// blocking playlist reload, a WebSocket) takes a slot first and keeps the
/// guard for as long as it waits:
///
/// ```ignore
/// async fn reload(State(state): State<AppState>, ClientAddr(client): ClientAddr) -> Result<Response> {
///     let _slot = state.client_slots.try_acquire(client)?; // 429 + Retry-After when over
///     // ... wait for the playlist; the slot is freed when `_slot` drops,
///     // also when the client goes away and the handler is cancelled.
/// }
/// ```
#[derive(Debug)]
pub struct ClientSlots {
    slots: Arc<PerClient>,
}

/// A slot held by one client; freed when dropped.
#[derive(Debug)]
pub struct SlotGuard {
    _held: Held,
    /// A gauge of waiting requests this slot counts in, if any.
    _counted: Option<base::metrics::GaugeGuard>,
}

impl SlotGuard {
    /// Also counts this slot in `gauge` while it is held.
    pub fn counted(mut self, gauge: &base::metrics::Gauge) -> Self {
        self._counted = Some(base::metrics::Metrics::hold(gauge));
        self
    }
}

impl ClientSlots {
    pub fn new(max_per_client: usize) -> Self {
        Self {
            slots: PerClient::new(max_per_client),
        }
    }

    /// Takes one of `client`'s slots, or answers 429 with `Retry-After`
    /// when it already holds all of them.
    pub fn try_acquire(&self, client: IpAddr) -> Result<SlotGuard, Error> {
        let held = self
            .slots
            .try_take(client.into())
            .ok_or_else(|| Error::RateLimited {
                message: format!(
                    "too many waiting requests from your address (limit {}); retry later",
                    self.slots.cap
                ),
                retry_after_s: CLIENT_RETRY_AFTER_S,
            })?;
        Ok(SlotGuard {
            _held: held,
            _counted: None,
        })
    }

    /// Slots `client` holds now.
    pub fn held(&self, client: IpAddr) -> usize {
        self.slots.count(client.into())
    }
}

/// Admission of new connections: a ceiling for all, and a cap per client
/// address (a trusted proxy, carrying many clients, has none).
#[derive(Debug)]
pub struct Admission {
    all: Arc<Semaphore>,
    ceiling: usize,
    per_client: Arc<PerClient>,
    trusted: Arc<Trusted>,
}

/// An admitted connection's place; given back when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    _all: OwnedSemaphorePermit,
    _client: Option<Held>,
}

impl Admission {
    pub fn new(ceiling: usize, per_client: usize, trusted: Arc<Trusted>) -> Self {
        Self {
            all: Arc::new(Semaphore::new(ceiling)),
            ceiling,
            per_client: PerClient::new(per_client),
            trusted,
        }
    }

    pub fn from_config(config: &Config, open_files: u64, trusted: Arc<Trusted>) -> Self {
        Self::new(
            config.connection_ceiling(open_files),
            config.max_connections_per_client,
            trusted,
        )
    }

    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    pub fn per_client(&self) -> usize {
        self.per_client.cap
    }

    /// A place for a new connection from `peer`, or the error to answer it
    /// with: 429 when this client holds its share, 503 when all are taken.
    pub fn admit(&self, peer: IpAddr) -> Result<ConnectionPermit, Error> {
        let client = if self.trusted.contains(peer) {
            None
        } else {
            let held = self
                .per_client
                .try_take(peer.into())
                .ok_or_else(|| Error::RateLimited {
                    message: format!(
                        "too many connections from your address (limit {}); retry later",
                        self.per_client.cap
                    ),
                    retry_after_s: CLIENT_RETRY_AFTER_S,
                })?;
            Some(held)
        };
        let all = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Busy {
                message: format!(
                    "the server is at its limit of {} connections; retry later",
                    self.ceiling
                ),
                retry_after_s: FULL_RETRY_AFTER_S,
            })?;
        Ok(ConnectionPermit {
            _all: all,
            _client: client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.ceiling - self.all.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn slots_are_capped_per_client_and_freed_on_drop() {
        let slots = ClientSlots::new(2);
        let a = ip("192.0.2.1");
        let first = slots.try_acquire(a).unwrap();
        let _second = slots.try_acquire(a).unwrap();
        let refused = slots.try_acquire(a).unwrap_err();
        assert_eq!(crate::http::error::status(&refused), 429);
        assert_eq!(refused.retry_after_s(), Some(CLIENT_RETRY_AFTER_S));
        // Another client is not affected.
        let _other = slots.try_acquire(ip("192.0.2.2")).unwrap();
        drop(first);
        assert_eq!(slots.held(a), 1);
        let _again = slots.try_acquire(a).unwrap();
        assert_eq!(slots.held(a), 2);
    }

    #[test]
    fn a_client_that_holds_nothing_leaves_no_entry() {
        let slots = ClientSlots::new(1);
        for n in 0..100u8 {
            drop(slots.try_acquire(IpAddr::from([198, 51, 100, n])).unwrap());
        }
        assert!(slots.slots.held.lock().unwrap().is_empty());
        assert!(ClientSlots::new(0).try_acquire(ip("192.0.2.1")).is_err());
        assert!(slots.slots.held.lock().unwrap().is_empty());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        let slots = ClientSlots::new(1);
        let _held = slots.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        assert!(slots.try_acquire(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(slots.try_acquire(ip("2001:db8:1:3::1")).is_ok());
        // An IPv4-mapped address is the IPv4 client.
        let _v4 = slots.try_acquire(ip("192.0.2.7")).unwrap();
        assert!(slots.try_acquire(ip("::ffff:192.0.2.7")).is_err());
    }

    #[test]
    fn connections_are_capped_per_client_then_in_all() {
        let admission = Admission::new(3, 2, Arc::new(Trusted::new(vec![ip("10.0.0.1")])));
        let a = ip("192.0.2.1");
        let _a1 = admission.admit(a).unwrap();
        let a2 = admission.admit(a).unwrap();
        assert_eq!(
            crate::http::error::status(&admission.admit(a).unwrap_err()),
            429
        );
        let _b1 = admission.admit(ip("192.0.2.2")).unwrap();
        let full = admission.admit(ip("192.0.2.3")).unwrap_err();
        assert_eq!(crate::http::error::status(&full), 503);
        assert_eq!(full.retry_after_s(), Some(FULL_RETRY_AFTER_S));
        drop(a2);
        assert_eq!(admission.open(), 2);
        // A trusted proxy has no per-client cap, only the ceiling.
        let _p1 = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            crate::http::error::status(&admission.admit(ip("10.0.0.1")).unwrap_err()),
            503
        );
    }

    #[test]
    fn x_forwarded_for_is_read_only_from_a_trusted_proxy() {
        let proxy = ip("10.0.0.1");
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.4".parse().unwrap(),
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_addr(ip("192.0.2.1"), &headers, &Trusted::new(vec![proxy])),
            ip("192.0.2.1")
        );
        // The proxy's: the rightmost hop (the client may forge the left).
        assert_eq!(
            client_addr(proxy, &headers, &Trusted::new(vec![proxy])),
            ip("198.51.100.4")
        );
        // Trusted proxies in the chain are skipped, across header lines.
        headers.append("x-forwarded-for", "10.0.0.2:4711".parse().unwrap());
        let chain = Trusted::new(vec![proxy]);
        chain.set_nodes(vec![ip("10.0.0.2")]);
        assert_eq!(client_addr(proxy, &headers, &chain), ip("198.51.100.4"));
        // Garbage or no header: the proxy itself.
        headers.insert("x-forwarded-for", "unknown".parse().unwrap());
        assert_eq!(
            client_addr(proxy, &headers, &Trusted::new(vec![proxy])),
            proxy
        );
        assert_eq!(
            client_addr(proxy, &HeaderMap::new(), &Trusted::new(vec![proxy])),
            proxy
        );
        // A dual-stack listener's view of the proxy is the proxy.
        let mapped = ip("::ffff:10.0.0.1");
        headers.insert("x-forwarded-for", "198.51.100.4".parse().unwrap());
        assert_eq!(
            client_addr(mapped, &headers, &Trusted::new(vec![proxy])),
            ip("198.51.100.4")
        );
    }
}
