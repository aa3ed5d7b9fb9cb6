//! Server settings: command-line flags and `SEGCAST_*` environment variables,
//! each with a named default. Every limit the server enforces lives here.
//! The layers below take narrow settings structs, each made from a
//! [`Config`] by one `From` at the end of this file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use store::mirror::{parse_public_url, StoreUrl};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Data directory, relative to where the server is started.
pub const DEFAULT_DATA_DIR: &str = "media";
/// Largest accepted chunk. MediaRecorder at 1 s timeslices sends ~50-500 KB.
pub const DEFAULT_MAX_CHUNK_BYTES: u64 = 16 << 20;
/// Highest seq + 1 a recording may use: a day of 0.25 s chunks, with room.
pub const DEFAULT_MAX_CHUNKS: u64 = 400_000;
/// Bytes of chunks one recording may store: about 14 h of a 2.5 Mbit/s
/// webcam, so a runaway or hostile uploader cannot fill the disk alone.
pub const DEFAULT_MAX_RECORDING_BYTES: u64 = 16 << 30;
/// Free space a new recording needs: a few minutes of chunks and media,
/// and room for the database, so a full disk refuses new work up front
/// instead of failing recordings already under way.
pub const DEFAULT_MIN_FREE_MB: u64 = 256;
/// Recordings being recorded or processed at once; each runs an ffmpeg
/// (~0.3 core for 720p30 at `veryfast`), so size this to the machine.
pub const DEFAULT_MAX_LIVE_RECORDINGS: usize = 16;
/// A recording that receives no chunk for this long is finalized from what
/// it has (the uploader is gone: tab closed, device lost).
pub const DEFAULT_IDLE_TIMEOUT_S: u64 = 600;
/// A request body that sends nothing for this long is cut off (slow
/// clients holding connections open): 408.
pub const DEFAULT_BODY_TIMEOUT_S: u64 = 30;
/// A connection must deliver a request's complete header this soon after it
/// opens, or after its previous response ends; otherwise it is closed
/// (nginx's `client_header_timeout`, 60 s there). Half-open connections
/// are the cheapest way to hold a server's file descriptors.
pub const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;
/// A kept-alive connection with no request in flight is closed after this
/// long (Apache and Node.js use 5 s, nginx 75 s). It cannot outlast the
/// header timeout, which also runs while a connection waits for its next
/// request.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_S: u64 = 5;
/// Connections one client address may hold open at once. A browser opens
/// at most 6 per server; the margin is for tabs and several people behind
/// one NAT. Over it a connection is answered 429 and closed at once.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// Long-lived requests (blocking playlist reloads, WebSockets) one client
/// address may hold at once; over it they get 429 with `Retry-After`.
pub const DEFAULT_MAX_WAITING_PER_CLIENT: usize = 32;
/// A client over a per-client cap is told to retry after this many
/// seconds: its own connections and requests free up quickly.
pub const CLIENT_RETRY_AFTER_S: u32 = 2;
/// A connection refused because the server is at `--max-connections`
/// is told to retry after this many seconds.
pub const FULL_RETRY_AFTER_S: u32 = 5;
/// Open files kept out of the default connection ceiling for the server
/// itself (listener, epoll, inotify, logs, the blocking pool's files)...
pub const FD_RESERVE_BASE: u64 = 64;
/// ...and for each live recording or import job: its ffmpeg's three pipes,
/// a poster ffmpeg's three, the chunk or segment being written and read.
pub const FD_RESERVE_PER_JOB: u64 = 16;
/// The default connection ceiling never goes above this, whatever the
/// open-file limit: each connection costs buffers and a task.
pub const MAX_DEFAULT_CONNECTIONS: usize = 16_384;
/// Nor below this, however low the open-file limit.
pub const MIN_DEFAULT_CONNECTIONS: usize = 16;
/// Wanted segment duration; ffmpeg is told to place keyframes on this grid.
pub const DEFAULT_SEGMENT_TARGET_MS: u64 = 2000;
/// ffmpeg cuts a fragment at least this often: the future LL-HLS part size.
pub const DEFAULT_FRAGMENT_MS: u64 = 200;
pub const DEFAULT_VIDEO_KBPS: u32 = 2500;
pub const DEFAULT_AUDIO_KBPS: u32 = 128;
/// x264 preset: `veryfast` keeps a 720p30 webcam well under one core.
pub const DEFAULT_X264_PRESET: &str = "veryfast";
pub const DEFAULT_FFMPEG: &str = "ffmpeg";
pub const DEFAULT_FFPROBE: &str = "ffprobe";
/// Largest file accepted by `POST /api/imports` (413 above it).
pub const DEFAULT_MAX_IMPORT_BYTES: u64 = 16 << 30;
/// Imports processed at once; the others wait their turn. Copying runs at
/// disk speed, transcoding takes a core or two each.
pub const DEFAULT_IMPORT_JOBS: u64 = 2;
/// An inbox file whose size and mtime have not changed for this long is
/// taken as complete even without a close-write event (network shares).
pub const DEFAULT_INBOX_SETTLE_MS: u64 = 2000;
/// Times ffmpeg is started for one recording before it is declared failed:
/// a crash is retried, an input that kills ffmpeg every time is not.
pub const DEFAULT_FFMPEG_ATTEMPTS: u32 = 3;
/// Longest comment author name, in characters (the contract's 1..64).
pub const DEFAULT_COMMENT_MAX_AUTHOR_CHARS: usize = 64;
/// Longest comment text, in characters (the contract's 1..2000).
pub const DEFAULT_COMMENT_MAX_TEXT_CHARS: usize = 2000;
/// Comments one client address may post per `DEFAULT_COMMENT_RATE_WINDOW_S`
/// (over all recordings); more get 429 + `Retry-After`.
pub const DEFAULT_COMMENT_RATE: usize = 10;
pub const DEFAULT_COMMENT_RATE_WINDOW_S: u64 = 10;
/// Comment WebSockets open on one recording; more get 503 + `Retry-After`.
/// Each costs a task and its queue (a few KB idle).
pub const DEFAULT_COMMENT_MAX_SOCKETS: usize = 500;
/// Memory for finished media files served again and again (segments, and
/// a finished recording's playlists): about 25 minutes of 720p video.
pub const DEFAULT_MEDIA_CACHE_MB: u64 = 256;
/// Largest message a client may send on a comment socket: 9 KiB, so the
/// largest valid `post` fits (2000 four-byte characters of text, a
/// 64-character author and the JSON around them: about 8.4 KB).
pub const DEFAULT_COMMENT_MAX_MESSAGE_BYTES: usize = 8 * 1024 + 1024;
/// Messages queued for one comment socket; a viewer further behind is
/// closed (1013, "try again later") and reconnects with the full history.
pub const DEFAULT_COMMENT_SOCKET_QUEUE: usize = 256;
/// A comment socket that cannot take a message for this long (the viewer
/// stopped reading) is closed.
pub const DEFAULT_COMMENT_SEND_TIMEOUT_MS: u64 = 10_000;
/// A share link lives this long unless its creator asks otherwise.
pub const DEFAULT_SHARE_EXPIRY_S: u64 = 24 * 3600;
/// Longest life a share link may be given (a link cannot be revoked
/// before it expires, except by changing the token secret).
pub const DEFAULT_SHARE_MAX_EXPIRY_S: u64 = 30 * 24 * 3600;
/// A TLS handshake must complete within this many seconds; the header
/// timeout starts after it.
pub const TLS_HANDSHAKE_TIMEOUT_S: u64 = 10;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SEGCAST_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Serve `GET /metrics` on this address only (e.g. 127.0.0.1:9464),
    /// instead of on the main listener.
    #[arg(long, env = "SEGCAST_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Also put published media in S3-compatible object storage
    /// (`s3://bucket/prefix`), configured by the usual `AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`. Local
    /// disk stays the source; chunks stay local.
    #[arg(long, env = "SEGCAST_STORE")]
    pub store: Option<StoreUrl>,

    /// With --store: the public base of the bucket's prefix (a CDN in
    /// front of it), `URL/<id>/<file>` serving the object
    /// `<prefix>/<id>/<file>`. Finished public recordings, once all of
    /// them is in the bucket, are pointed at it (status URLs) and their
    /// `/media/…` GETs redirected there (302); live, private and
    /// encrypted recordings stay served here, and private ones stay out
    /// of the bucket.
    #[arg(long, env = "SEGCAST_PUBLIC_MEDIA_URL", requires = "store",
          value_parser = parse_public_url)]
    pub public_media_url: Option<String>,

    /// Directory holding recordings (chunks, segments, playlists).
    #[arg(long = "data", env = "SEGCAST_DATA", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// Where the library's metadata lives: `sqlite://PATH` or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`. Default: the embedded
    /// database `<data>/segcast.db`. Read as text and checked at start,
    /// so a password never appears in a usage error.
    #[arg(long, env = "SEGCAST_DATABASE", hide_env_values = true)]
    pub database: Option<String>,

    /// Secret (at least 16 bytes) that wraps the encryption keys stored in
    /// the database. Required with PostgreSQL, the same on every node;
    /// the embedded default makes one in `<data>/key-secret` (mode 0600).
    #[arg(long, env = "SEGCAST_KEY_SECRET", hide_env_values = true)]
    pub key_secret: Option<String>,

    /// The address other nodes and clients reach this node at directly
    /// (`http://10.0.0.11:8080`): required with a PostgreSQL `--database`
    /// (a cluster), refused without one. One running node holds it at a
    /// time, under a lease in the database.
    #[arg(long, env = "SEGCAST_NODE_URL")]
    pub node_url: Option<String>,

    /// How long a node that stopped renewing its lease keeps its
    /// `--node-url`, in seconds.
    #[arg(long, env = "SEGCAST_NODE_LEASE_S", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub node_lease_s: u64,

    /// When set, creating recordings and imports needs
    /// `Authorization: Bearer <key>`; the key may also delete any recording.
    #[arg(long, env = "SEGCAST_PUBLISH_KEY", hide_env_values = true)]
    pub publish_key: Option<String>,

    /// Largest accepted chunk, in bytes (413 above it).
    #[arg(long, env = "SEGCAST_MAX_CHUNK_BYTES", default_value_t = DEFAULT_MAX_CHUNK_BYTES)]
    pub max_chunk_bytes: u64,

    /// Bytes of chunks per recording (413 for a chunk beyond it).
    #[arg(long, env = "SEGCAST_MAX_RECORDING_BYTES", default_value_t = DEFAULT_MAX_RECORDING_BYTES)]
    pub max_recording_bytes: u64,

    /// Free space, in MiB, the data directory's file system must have for
    /// a new recording or import to be accepted (507 below it).
    #[arg(long, env = "SEGCAST_MIN_FREE_MB", default_value_t = DEFAULT_MIN_FREE_MB)]
    pub min_free_mb: u64,

    /// Chunks per recording: seq must stay below this.
    #[arg(long, env = "SEGCAST_MAX_CHUNKS", default_value_t = DEFAULT_MAX_CHUNKS)]
    pub max_chunks: u64,

    /// Live recordings at once (recording or processing; imports are not
    /// counted, they queue for --import-jobs); more get 503.
    #[arg(long, env = "SEGCAST_MAX_LIVE_RECORDINGS", default_value_t = DEFAULT_MAX_LIVE_RECORDINGS)]
    pub max_live_recordings: usize,

    /// Seconds without a chunk after which a recording is finalized from
    /// its contiguous chunks and marked incomplete.
    #[arg(long, env = "SEGCAST_IDLE_TIMEOUT_S", default_value_t = DEFAULT_IDLE_TIMEOUT_S)]
    pub idle_timeout_s: u64,

    /// Seconds a request body may stall before the request gets 408.
    #[arg(long, env = "SEGCAST_BODY_TIMEOUT_S", default_value_t = DEFAULT_BODY_TIMEOUT_S)]
    pub body_timeout_s: u64,

    /// Seconds a connection may take to send a request's complete header
    /// (counted from its opening, or from the end of its previous response);
    /// then it is closed.
    #[arg(long, env = "SEGCAST_HEADER_TIMEOUT_S", default_value_t = DEFAULT_HEADER_TIMEOUT_S,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_s: u64,

    /// Seconds an idle kept-alive connection stays open between requests
    /// (at most the header timeout).
    #[arg(long, env = "SEGCAST_KEEP_ALIVE_TIMEOUT_S", default_value_t = DEFAULT_KEEP_ALIVE_TIMEOUT_S,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_alive_timeout_s: u64,

    /// Open connections in all; more are answered 503 and closed. Default:
    /// the open-file limit less a reserve for recordings and imports.
    #[arg(long, env = "SEGCAST_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Open connections per client address (an IPv6 client is its /64);
    /// more are answered 429 and closed.
    #[arg(long, env = "SEGCAST_MAX_CONNECTIONS_PER_CLIENT", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_CLIENT)]
    pub max_connections_per_client: usize,

    /// Long-lived requests (blocking playlist reloads, WebSockets) per
    /// client address; more get 429 with Retry-After.
    #[arg(long, env = "SEGCAST_MAX_WAITING_PER_CLIENT", default_value_t = DEFAULT_MAX_WAITING_PER_CLIENT)]
    pub max_waiting_per_client: usize,

    /// A reverse proxy whose `X-Forwarded-For` names the client (repeat the
    /// flag or separate with commas). Its own connections are not capped
    /// per client.
    #[arg(
        long = "trusted-proxy",
        env = "SEGCAST_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// Target segment duration in milliseconds.
    #[arg(long, env = "SEGCAST_SEGMENT_MS", default_value_t = DEFAULT_SEGMENT_TARGET_MS)]
    pub segment_target_ms: u64,

    /// Longest fragment ffmpeg writes, in milliseconds.
    #[arg(long, env = "SEGCAST_FRAGMENT_MS", default_value_t = DEFAULT_FRAGMENT_MS)]
    pub fragment_ms: u64,

    /// H.264 bit rate (also its cap), kbit/s.
    #[arg(long, env = "SEGCAST_VIDEO_KBPS", default_value_t = DEFAULT_VIDEO_KBPS)]
    pub video_kbps: u32,

    /// AAC bit rate, kbit/s.
    #[arg(long, env = "SEGCAST_AUDIO_KBPS", default_value_t = DEFAULT_AUDIO_KBPS)]
    pub audio_kbps: u32,

    /// x264 preset (ultrafast … veryslow).
    #[arg(long, env = "SEGCAST_X264_PRESET", default_value = DEFAULT_X264_PRESET)]
    pub x264_preset: String,

    /// Serve the web pages from this directory (`pages/`, `public/`, and
    /// hls.js and dash.js under `node_modules/` after `npm ci`) instead of
    /// the copies inside the binary: for working on the pages.
    #[arg(long, env = "SEGCAST_PLAYER_DIR")]
    pub player_dir: Option<PathBuf>,

    /// ffmpeg starts per recording before it is marked failed.
    #[arg(long, env = "SEGCAST_FFMPEG_ATTEMPTS", default_value_t = DEFAULT_FFMPEG_ATTEMPTS)]
    pub ffmpeg_attempts: u32,

    /// ffmpeg binary: the system one by default, never downloaded.
    #[arg(long, env = "SEGCAST_FFMPEG", default_value = DEFAULT_FFMPEG)]
    pub ffmpeg: PathBuf,

    /// ffprobe binary, used to look into imported files.
    #[arg(long, env = "SEGCAST_FFPROBE", default_value = DEFAULT_FFPROBE)]
    pub ffprobe: PathBuf,

    /// Largest file accepted for import over HTTP, in bytes (413 above it).
    #[arg(long, env = "SEGCAST_MAX_IMPORT_BYTES", default_value_t = DEFAULT_MAX_IMPORT_BYTES)]
    pub max_import_bytes: u64,

    /// Imports processed at once; more wait in state `processing`.
    #[arg(long, visible_alias = "jobs", env = "SEGCAST_IMPORT_JOBS", default_value_t = DEFAULT_IMPORT_JOBS,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub import_jobs: u64,

    /// Milliseconds an inbox file must stay unchanged before it is imported
    /// when no close-write event says it is complete.
    #[arg(long, env = "SEGCAST_INBOX_SETTLE_MS", default_value_t = DEFAULT_INBOX_SETTLE_MS)]
    pub inbox_settle_ms: u64,

    /// Longest comment author name, in characters (400 above it).
    #[arg(long, env = "SEGCAST_COMMENT_MAX_AUTHOR_CHARS", default_value_t = DEFAULT_COMMENT_MAX_AUTHOR_CHARS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub comment_max_author_chars: usize,

    /// Longest comment text, in characters (400 above it).
    #[arg(long, env = "SEGCAST_COMMENT_MAX_TEXT_CHARS", default_value_t = DEFAULT_COMMENT_MAX_TEXT_CHARS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub comment_max_text_chars: usize,

    /// Comments one client address may post per --comment-rate-window-s
    /// (429 + Retry-After beyond; refused comments do not count).
    #[arg(long, env = "SEGCAST_COMMENT_RATE", default_value_t = DEFAULT_COMMENT_RATE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub comment_rate: usize,

    /// The window of --comment-rate, in seconds.
    #[arg(long, env = "SEGCAST_COMMENT_RATE_WINDOW_S", default_value_t = DEFAULT_COMMENT_RATE_WINDOW_S,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub comment_rate_window_s: u64,

    /// Comment WebSockets per recording (503 + Retry-After beyond).
    #[arg(long, env = "SEGCAST_COMMENT_MAX_SOCKETS", default_value_t = DEFAULT_COMMENT_MAX_SOCKETS)]
    pub comment_max_sockets: usize,

    /// Megabytes of finished media files kept in memory for viewers
    /// (0 turns the cache off).
    #[arg(long, env = "SEGCAST_MEDIA_CACHE_MB", default_value_t = DEFAULT_MEDIA_CACHE_MB)]
    pub media_cache_mb: u64,

    /// Largest message a client may send on a comment socket, in bytes
    /// (the socket is closed with 1009 above it).
    #[arg(long, env = "SEGCAST_COMMENT_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_COMMENT_MAX_MESSAGE_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(64..))]
    pub comment_max_message_bytes: usize,

    /// Messages queued for one comment socket before a viewer that lags
    /// behind is closed (it reconnects and gets the history again).
    #[arg(long, env = "SEGCAST_COMMENT_SOCKET_QUEUE", default_value_t = DEFAULT_COMMENT_SOCKET_QUEUE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub comment_socket_queue: usize,

    /// Milliseconds a comment socket may take to accept one message before
    /// it is closed (a viewer that stopped reading).
    #[arg(long, env = "SEGCAST_COMMENT_SEND_TIMEOUT_MS", default_value_t = DEFAULT_COMMENT_SEND_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub comment_send_timeout_ms: u64,

    /// Secret that signs share links (at least 16 bytes). Default: 32
    /// random bytes made on first start and kept in the database.
    #[arg(long, env = "SEGCAST_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// Longest expiry a share link may be given, in seconds (400 above it).
    #[arg(long, env = "SEGCAST_SHARE_MAX_EXPIRY_S", default_value_t = DEFAULT_SHARE_MAX_EXPIRY_S,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub share_max_expiry_s: u64,

    /// Encrypt new recordings and imports (AES-128 HLS) unless they ask
    /// for `"encrypt": false`.
    #[arg(long, env = "SEGCAST_ENCRYPT")]
    pub encrypt: bool,

    /// PEM certificate chain: serve HTTPS (needs --tls-key).
    #[arg(long, env = "SEGCAST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "SEGCAST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl Config {
    /// The connection ceiling: `--max-connections`, or else derived from the
    /// open-file limit in force. Each connection may hold two descriptors
    /// (its socket and a file it is sending), after a reserve for the
    /// server and for every recording and import that may run at once.
    pub fn connection_ceiling(&self, open_files: u64) -> usize {
        if let Some(max) = self.max_connections {
            return max;
        }
        let jobs = self.max_live_recordings as u64 + self.import_jobs;
        let reserve = FD_RESERVE_BASE + FD_RESERVE_PER_JOB * jobs;
        let derived = usize::try_from(open_files.saturating_sub(reserve) / 2).unwrap_or(usize::MAX);
        derived.clamp(MIN_DEFAULT_CONNECTIONS, MAX_DEFAULT_CONNECTIONS)
    }

    /// `--database`, parsed; the embedded default without one.
    pub fn database_url(&self) -> Result<store::catalog::DatabaseUrl, String> {
        match &self.database {
            Some(text) => store::catalog::DatabaseUrl::parse(text),
            None => Ok(store::catalog::DatabaseUrl::embedded(&self.data_dir)),
        }
    }

    /// Defaults with the data directory set: for tests and embedding.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        let mut config = <Defaults as clap::Parser>::parse_from(["segcast"]).config;
        config.data_dir = data_dir.into();
        config
    }
}

impl From<&Config> for pipeline::transcode::args::EncodeSettings {
    fn from(c: &Config) -> Self {
        Self {
            segment_target_ms: c.segment_target_ms,
            fragment_ms: c.fragment_ms,
            video_kbps: c.video_kbps,
            audio_kbps: c.audio_kbps,
            x264_preset: c.x264_preset.clone(),
        }
    }
}

impl From<&Config> for pipeline::Settings {
    fn from(c: &Config) -> Self {
        Self {
            data_dir: c.data_dir.clone(),
            ffmpeg: c.ffmpeg.clone(),
            ffprobe: c.ffprobe.clone(),
            encode: c.into(),
            ffmpeg_attempts: c.ffmpeg_attempts,
            max_live_recordings: c.max_live_recordings,
            max_recording_bytes: c.max_recording_bytes,
            max_chunks: c.max_chunks,
            min_free_bytes: c.min_free_mb.saturating_mul(1 << 20),
            idle_timeout_s: c.idle_timeout_s,
            import_jobs: c.import_jobs,
            encrypt_by_default: c.encrypt,
            inbox_settle_ms: c.inbox_settle_ms,
        }
    }
}

impl From<&Config> for pipeline::CommentSettings {
    fn from(c: &Config) -> Self {
        Self {
            limits: pipeline::comments::Limits {
                max_author_chars: c.comment_max_author_chars,
                max_text_chars: c.comment_max_text_chars,
            },
            rate: c.comment_rate,
            rate_window_s: c.comment_rate_window_s,
            max_sockets: c.comment_max_sockets,
            socket_queue: c.comment_socket_queue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_connection_ceiling_leaves_room_for_recordings() {
        let config = Config::with_data_dir("media");
        // 1024 - (64 + 16 * (16 live + 2 imports)) = 672, two descriptors each.
        assert_eq!(config.connection_ceiling(1024), 336);
        assert_eq!(config.connection_ceiling(100), MIN_DEFAULT_CONNECTIONS);
        assert_eq!(config.connection_ceiling(1 << 20), MAX_DEFAULT_CONNECTIONS);
        let mut fixed = config.clone();
        fixed.max_connections = Some(5000);
        assert_eq!(fixed.connection_ceiling(1024), 5000);
    }
}
