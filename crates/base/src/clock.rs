//! The one wall clock: Unix time in milliseconds, and the RFC 3339 text the
//! API shows. Monotonic waits (timeouts, backoff) use tokio's clock instead;
//! this is for what is stored or shown (creation times, share-link
//! expiries, DASH availability times).
//!
//! Code that must be tested at a chosen time takes a [`Clock`];
//! [`SimulatedClock`] stands in for [`SystemClock`] there.

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in Unix milliseconds.
    fn unix_ms(&self) -> u64;

    /// Now, in Unix seconds.
    fn unix_s(&self) -> u64 {
        self.unix_ms() / 1000
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that shows what it is set to, for tests.
#[derive(Debug, Default)]
pub struct SimulatedClock(AtomicU64);

impl SimulatedClock {
    pub fn at(unix_ms: u64) -> Self {
        Self(AtomicU64::new(unix_ms))
    }

    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for SimulatedClock {
    fn unix_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system clock now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    SystemClock.unix_ms()
}

/// The system clock now, in Unix seconds.
pub fn unix_s() -> u64 {
    SystemClock.unix_s()
}

/// `unix_ms` as RFC 3339 UTC with millisecond precision
/// (`2026-11-21T14:32:11.123Z`): fixed width, so it sorts as text.
pub fn rfc3339(unix_ms: u64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let nanos = i128::from(unix_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&format)
        .expect("valid format")
}

/// The system clock now, as [`rfc3339`] text.
pub fn rfc3339_now() -> String {
    rfc3339(unix_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let t = rfc3339_now();
        assert_eq!(t.len(), "2026-11-21T14:32:11.123Z".len(), "{t}");
        assert!(
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok()
        );
        assert_eq!(rfc3339(1_763_735_531_123), "2025-11-21T14:32:11.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_simulated_clock_moves_only_when_told() {
        let clock = SimulatedClock::at(5_000);
        assert_eq!((clock.unix_ms(), clock.unix_s()), (5_000, 5));
        clock.advance_ms(1_500);
        assert_eq!(clock.unix_ms(), 6_500);
    }
}
