// Watch page: plays a recording's HLS playlist, near the live edge while it
// is recorded, as normal video once it is ready.
import { api, absolute, copyText, formatDuration, STATE_LABELS } from './common.js';

const id = decodeURIComponent(window.location.pathname.split('/').filter(Boolean).pop() || '');
const video = document.getElementById('video');
const titleEl = document.getElementById('title');
const badge = document.getElementById('badge');
const durationEl = document.getElementById('duration');
const message = document.getElementById('message');
const STATUS_POLL_MS = 2000;

// hls.js live tuning for 2 s segments published ~1-2 s after they are
// recorded: start 2.5 s behind the playlist's end (closer would stall at
// every segment boundary while the next one is still being packaged), and
// catch up by playing slightly faster when more than 6 s behind.
const HLS_CONFIG = {
  liveSyncDuration: 2.5,
  liveMaxLatencyDuration: 6,
  maxLiveSyncPlaybackRate: 1.25,
  backBufferLength: 30,
  // Segments are listed only once complete: retry a playlist or segment
  // that momentarily fails instead of giving up.
  manifestLoadingMaxRetry: 6,
  levelLoadingMaxRetry: 6,
  fragLoadingMaxRetry: 6,
};

let hls = null;
let playing = false;

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
  if (status.state === 'failed') {
    show(`This recording failed: ${status.error || 'unknown error'}`, 'error');
  } else if (status.segments === 0) {
    show('Waiting for the first seconds of video…');
  } else if (message.textContent.startsWith('Waiting')) {
    show('');
  }
}

function startPlayback(status) {
  if (playing || status.segments === 0 || status.state === 'failed') return;
  playing = true;
  const src = status.hls;
  if (window.Hls && window.Hls.isSupported()) {
    hls = new window.Hls(HLS_CONFIG);
    hls.on(window.Hls.Events.ERROR, (_event, data) => recover(data));
    hls.loadSource(src);
    hls.attachMedia(video);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = src; // Safari plays HLS natively.
  } else {
    show('This browser cannot play HLS. Copy the playlist URL into VLC or ffplay.', 'error');
    return;
  }
  video.play().catch(() => {
    /* Autoplay refused: the controls let the viewer start it. */
  });
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

video.addEventListener('playing', () => {
  if (message.textContent.startsWith('Network')) show('');
});

async function poll() {
  try {
    const status = await api(`/api/recordings/${encodeURIComponent(id)}`);
    render(status);
    startPlayback(status);
    if (status.state === 'recording' || status.state === 'processing' || status.segments === 0) {
      setTimeout(poll, STATUS_POLL_MS);
    }
  } catch (err) {
    if (err.status === 404 || err.status === 410) {
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
poll();
