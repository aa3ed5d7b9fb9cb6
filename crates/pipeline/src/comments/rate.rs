//! The per-client post rate (`--comment-rate` posts per
//! `--comment-rate-window-s`): a sliding log of each client's accepted
//! posts. Pure: the caller passes the time, so tests need no clock.
//!
//! A client is its TCP peer address. IPv6 clients are counted per /64,
//! the block one subscriber gets (RFC 6177), since any host can pick a new
//! address inside its own /64 at will; IPv4-mapped IPv6 addresses count as
//! the IPv4 address. Behind a reverse proxy every client has the proxy's
//! address: the limit then applies to all of them together.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Clients tracked before idle ones are swept out.
const SWEEP_ABOVE_CLIENTS: usize = 1024;

#[derive(Debug)]
pub struct RateLimiter {
    max_posts: usize,
    window: Duration,
    /// Times of each client's accepted posts within the window, oldest first.
    clients: HashMap<IpAddr, VecDeque<Instant>>,
}

impl RateLimiter {
    pub fn new(max_posts: usize, window: Duration) -> Self {
        Self {
            max_posts: max_posts.max(1),
            window,
            clients: HashMap::new(),
        }
    }

    /// Counts a post by `client` at `now`; or, when the client already
    /// posted `max_posts` times within the window, counts nothing and
    /// tells how long until it may post again. Refused posts do not count,
    /// so a client retrying after that wait gets through.
    pub fn try_acquire(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.clients.len() > SWEEP_ABOVE_CLIENTS {
            self.sweep(now);
        }
        let window = self.window;
        let posts = self.clients.entry(client_key(client)).or_default();
        while posts
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            posts.pop_front();
        }
        if posts.len() >= self.max_posts {
            let oldest = posts[0];
            return Err((oldest + window).saturating_duration_since(now));
        }
        posts.push_back(now);
        Ok(())
    }

    /// Forgets clients with no post inside the window.
    fn sweep(&mut self, now: Instant) {
        let window = self.window;
        self.clients.retain(|_, posts| {
            posts
                .back()
                .is_some_and(|&t| now.saturating_duration_since(t) < window)
        });
    }
}

/// Whole seconds to put in `Retry-After`: rounded up, at least 1.
pub fn retry_after_s(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.clamp(1, u64::from(u32::MAX)) as u32
}

/// The address a client is counted under (see the module doc).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_client_past_its_rate_waits_for_its_oldest_post_to_age_out() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut rate = RateLimiter::new(3, s(10));
        for i in 0..3 {
            assert_eq!(rate.try_acquire(A, t0 + s(i)), Ok(()));
        }
        assert_eq!(rate.try_acquire(A, t0 + s(4)), Err(s(6)));
        // Refused posts do not count: the wait does not grow.
        assert_eq!(rate.try_acquire(A, t0 + s(5)), Err(s(5)));
        // Other clients are not affected.
        assert_eq!(rate.try_acquire(B, t0 + s(5)), Ok(()));
        // Once the first post is 10 s old, one more is allowed.
        assert_eq!(rate.try_acquire(A, t0 + s(10)), Ok(()));
        assert_eq!(rate.try_acquire(A, t0 + s(10)), Err(s(1)));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_s(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_s(Duration::ZERO), 1);
        assert_eq!(retry_after_s(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_s(Duration::from_secs(4)), 4);
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut rate = RateLimiter::new(1, Duration::from_secs(10));
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(rate.try_acquire(one, t0).is_ok());
        assert!(rate.try_acquire(same_64, t0).is_err());
        assert!(rate.try_acquire(other_64, t0).is_ok());
        assert!(rate.try_acquire(A, t0).is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(rate.try_acquire(mapped, t0).is_err());
    }

    #[test]
    fn idle_clients_are_swept() {
        let t0 = Instant::now();
        let mut rate = RateLimiter::new(1, Duration::from_secs(1));
        for i in 0..=SWEEP_ABOVE_CLIENTS as u32 {
            rate.try_acquire(IpAddr::V4(i.into()), t0).unwrap();
        }
        rate.try_acquire(A, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(rate.clients.len(), 1);
    }
}
