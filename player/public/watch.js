// Watch page: plays a recording's HLS playlist, near the live edge while it
// is recorded, as normal video once it is ready.
import { api, absolute, copyText, formatDuration, STATE_LABELS } from './common.js';
import { mountComments } from './comments.js';

const id = decodeURIComponent(window.location.pathname.split('/').filter(Boolean).pop() || '');
/** `?format=dash` plays the DASH manifest with dash.js; HLS otherwise. */
const FORMAT = new URLSearchParams(window.location.search).get('format') === 'dash' ? 'dash' : 'hls';
/** A share link's token (`?token=`): passed to the status, comments and
 * playlist requests; the server carries it into every URI a playlist lists. */
const TOKEN = new URLSearchParams(window.location.search).get('token');
const TOKEN_QUERY = TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : '';
const video = document.getElementById('video');
const titleEl = document.getElementById('title');
const badge = document.getElementById('badge');
const durationEl = document.getElementById('duration');
const message = document.getElementById('message');
const STATUS_POLL_MS = 2000;

// hls.js in Low-Latency HLS mode: it reloads the playlist with blocking
// requests (_HLS_msn/_HLS_part), loads 0.2 s parts as they are listed, and
// keeps PART-HOLD-BACK (three parts) behind the live edge, as the playlist
// says. liveSyncDuration must stay unset: it would override that.
const HLS_CONFIG = {
  lowLatencyMode: true,
  // hls.js' own catch-up only speeds up with more than 1 s buffered ahead
  // (latency-controller.ts), which a 0.6 s hold-back never has, and it
  // resets any other rate: 1 turns it off, and catchUp() below does it.
  maxLiveSyncPlaybackRate: 1,
  // After a stall hls.js sits further back by this much (default 1 s, up
  // to a target duration): one part is enough to ride out a late part
  // without giving up the low latency for the rest of the session.
  liveSyncOnStallIncrease: 0.2,
  backBufferLength: 30,
  // A playlist or part that momentarily fails (a 503 from a blocking
  // reload that waited too long) is retried instead of giving up.
  manifestLoadingMaxRetry: 6,
  levelLoadingMaxRetry: 6,
  fragLoadingMaxRetry: 6,
};

let hls = null;
let dash = null;
let playing = false;

/** Catch-up after a stall or a slow start: while the player is further
 * behind the live edge than hls.js' target (PART-HOLD-BACK) and has media
 * buffered to spend, it plays a little faster; never when that would run
 * the buffer dry. */
const CATCH_UP = { maxRate: 1.25, toleranceS: 0.1, minAheadS: 0.3 };
function catchUp() {
  const live = hls?.latestLevelDetails?.live;
  if (!live || hls.latency == null || hls.targetLatency == null || video.paused) return;
  const excess = hls.latency - hls.targetLatency;
  const { buffered } = video;
  const ahead = buffered.length ? buffered.end(buffered.length - 1) - video.currentTime : 0;
  const rate = excess > CATCH_UP.toleranceS && ahead > CATCH_UP.minAheadS ? Math.min(CATCH_UP.maxRate, 1 + excess / 2) : 1;
  if (Math.abs(video.playbackRate - rate) > 0.01) video.playbackRate = rate;
}
video.addEventListener('timeupdate', catchUp);

function show(text, kind = '') {
  message.textContent = text;
  message.className = `notice ${kind}`;
  message.hidden = !text;
}

function render(status) {
  titleEl.textContent = status.title;
  document.title = `${status.title} · segcast`;
  const live = status.state === 'recording' || status.state === 'processing';
  badge.hidden = false;
  badge.textContent = status.state === 'recording' ? 'Live' : STATE_LABELS[status.state] ?? status.state;
  badge.className = `badge ${status.state === 'recording' ? 'live' : status.state}`;
  durationEl.textContent = live ? '' : formatDuration(status.duration_s);
  const url = absolute(status.hls);
  document.getElementById('url').textContent = url;
  document.getElementById('ffplay').textContent = `ffplay ${url}`;
  document.getElementById('dash-row').hidden = !status.dash;
  if (status.dash) document.getElementById('dash-url').textContent = absolute(status.dash);
  document.getElementById(FORMAT === 'dash' ? 'as-dash' : 'as-hls').setAttribute('aria-current', 'true');
  if (status.state === 'failed') {
    show(`This recording failed: ${status.error || 'unknown error'}`, 'error');
  } else if (status.segments === 0) {
    show('Waiting for the first seconds of video…');
  } else if (message.textContent.startsWith('Waiting')) {
    show('');
  }
}

/** dash.js near the live edge: its low-latency catch-up keeps it about a
 * segment behind the newest listed one while the recording goes on. */
function startDash(status) {
  if (!status.dash) {
    show('This recording has no DASH manifest (it was made before segcast published DASH); playing HLS.');
    return false;
  }
  dash = window.dashjs.MediaPlayer().create();
  // The latency target comes from the manifest's ServiceDescription: low
  // where segments can be fetched as they grow (availabilityTimeComplete
  // false, which also puts dash.js in low-latency mode), 1.5 segments else.
  window.segcastDash = dash;
  // dash.js retries segment requests itself; what reaches ERROR is final, so
  // the viewer is told (and the end-to-end tests can say why a stall stalled).
  dash.on(window.dashjs.MediaPlayer.events.ERROR, (event) => {
    const text = event.error?.message ?? String(event.error?.code ?? 'unknown');
    (window.segcastPlayerErrors ??= []).push(text);
    show(`Playback stopped: ${text}`, 'error');
  });
  // dash.js ends playback itself when its clock reaches the period's end
  // before the element fires `ended` (a 200 ms timer, to 5 decimals): it then
  // pauses a microsecond short of the end and `video.ended` stays false. Its
  // PLAYBACK_ENDED event fires on both paths, so that is what "ended" means.
  dash.on(window.dashjs.MediaPlayer.events.PLAYBACK_ENDED, () => { window.segcastPlaybackEnded = true; });
  dash.initialize(video, status.dash, true);
  return true;
}

function startPlayback(status) {
  if (playing || status.segments === 0 || status.state === 'failed') return;
  playing = true;
  if (FORMAT === 'dash' && startDash(status)) return;
  const src = status.hls;
  if (window.Hls && window.Hls.isSupported()) {
    hls = new window.Hls(HLS_CONFIG);
    // For the console and the end-to-end tests (latency, targetLatency).
    window.segcastHls = hls;
    hls.on(window.Hls.Events.ERROR, (_event, data) => recover(data));
    hls.loadSource(src);
    hls.attachMedia(video);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = src; // Safari plays HLS natively.
  } else {
    show('This browser cannot play HLS. Copy the playlist URL into VLC or ffplay.', 'error');
    return;
  }
  video.play().catch(refused);
}

/** The browser would not start playback by itself (its autoplay policy):
 * say so, instead of leaving a frozen first frame. */
const REFUSED = 'This browser did not start the video by itself: press ▶ to play it.';
function refused(err) {
  if (err?.name === 'NotAllowedError') show(REFUSED);
}

// hls.js' documented recovery: reload on network errors, rebuild the
// decoder on media errors, give up only on anything else.
let lastMediaRecovery = 0;
function recover(data) {
  if (!data.fatal) return;
  const { ErrorTypes } = window.Hls;
  if (data.type === ErrorTypes.NETWORK_ERROR) {
    show('Network trouble — retrying…');
    setTimeout(() => hls.startLoad(), 1000);
  } else if (data.type === ErrorTypes.MEDIA_ERROR) {
    const now = Date.now();
    if (now - lastMediaRecovery < 3000) hls.swapAudioCodec();
    lastMediaRecovery = now;
    hls.recoverMediaError();
  } else {
    show(`Playback stopped: ${data.details}`, 'error');
    hls.destroy();
  }
}

video.addEventListener('ended', () => { window.segcastPlaybackEnded = true; });
video.addEventListener('seeking', () => { window.segcastPlaybackEnded = false; });
video.addEventListener('playing', () => {
  if (message.textContent.startsWith('Network') || message.textContent === REFUSED) show('');
});

async function poll() {
  try {
    const status = await api(`/api/recordings/${encodeURIComponent(id)}${TOKEN_QUERY}`);
    render(status);
    startPlayback(status);
    if (status.state === 'recording' || status.state === 'processing' || status.segments === 0) {
      setTimeout(poll, STATUS_POLL_MS);
    }
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      titleEl.textContent = 'Private recording';
      show(`This recording is private: ${err.message}. Ask its owner for a share link.`, 'error');
    } else if (err.status === 404 || err.status === 410) {
      titleEl.textContent = 'Recording not found';
      show('There is no recording with this id. It may have been deleted — see the library.', 'error');
    } else {
      show(`Cannot reach the server (${err.message}); retrying…`);
      setTimeout(poll, STATUS_POLL_MS);
    }
  }
}

document.getElementById('copy').addEventListener('click', (e) =>
  copyText(document.getElementById('url').textContent, e.target),
);
// Comments: posts carry the player's position; a timestamp seeks there.
mountComments(document.getElementById('comments'), {
  id,
  token: TOKEN,
  getMediaTime: () => video.currentTime,
  seek: (seconds) => {
    video.currentTime = seconds;
    video.play().catch(() => {});
  },
});
poll();
