//! The open-file limit (`RLIMIT_NOFILE`, POSIX `getrlimit`/`setrlimit`):
//! every connection, chunk file and ffmpeg pipe takes a descriptor, and
//! most services start with a soft limit of 1024. The soft limit may be
//! raised up to the hard one without privileges, so the server does that
//! at start (as Go ≥ 1.19 and MediaMTX do) and sizes its connection ceiling
//! from the result (`Config::connection_ceiling`).

/// Raises the soft open-file limit to the hard limit and returns the limit
/// in force (the old soft limit if it could not be raised), logging both.
pub fn raise_open_file_limit() -> u64 {
    let (soft, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit");
            return u64::from(u32::MAX);
        }
    };
    match rlimit::increase_nofile_limit(hard) {
        Ok(now) => {
            tracing::info!(open_files = now, was = soft, hard, "open-file limit");
            now
        }
        Err(error) => {
            tracing::warn!(%error, open_files = soft, hard, "cannot raise the open-file limit");
            soft
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let limit = super::raise_open_file_limit();
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!(soft, limit);
        assert_eq!(soft, hard);
    }
}
