// Record page: camera preview, MediaRecorder with a 1 s timeslice, and the
// upload client that sends each chunk while the recording goes on.
import { api, absolute, copyText, formatBytes, formatDuration } from './common.js';
import { Uploader } from './upload-client.js';
import { openStore } from './chunk-store.js';
import { mountComments } from './comments.js';

/** A chunk every quarter second: a frame waits at most this long in the
 * browser before it is uploaded, which is the first link of the live
 * latency (viewers sit ~1 s behind the camera with 0.2 s LL-HLS parts).
 * Smaller slices add requests without gaining much more. */
const TIMESLICE_MS = 250;
/** What copies best first: H.264 the server publishes as it comes (it
 * encodes only the audio), in WebM on Chromium, in MP4 (with AAC) on Safari
 * and iOS; VP9/VP8 where nothing else is offered (Firefox), which the
 * server encodes. Labels say which one is used. */
const MIME_CANDIDATES = [
  ['video/webm;codecs=h264,opus', 'H.264 + Opus in WebM'],
  ['video/mp4;codecs=avc1,mp4a.40.2', 'H.264 + AAC in MP4'],
  ['video/mp4', 'MP4'],
  ['video/webm;codecs=vp9,opus', 'VP9 + Opus in WebM'],
  ['video/webm;codecs=vp8,opus', 'VP8 + Opus in WebM'],
  ['video/webm', 'WebM'],
];
/** A keyframe every second: the server copies H.264 only when keyframes
 * come at least every segment (2 s); browsers default to ~5 s
 * (docs/architecture.md, "Live copy or transcode"). */
const KEYFRAME_INTERVAL_MS = 1000;
/** The recorder handing over no bytes this long means nothing is being
 * recorded (WebKit's MediaRecorder gives only empty blobs for video on some
 * machines): the page says so rather than show LIVE. Several timeslices,
 * and more than WebKit's ~1 s cadence for audio. */
const SILENT_RECORDER_MS = 3000;

const $ = (id) => document.getElementById(id);
const preview = $('preview');
const startButton = $('start');
const stopButton = $('stop');
const message = $('message');

let store;
let stream = null;
let recorder = null;
let uploader = null;
let startedAt = 0;
let timer = null;
let comments = null; // viewers' comments on the recording being made

function show(text, kind = '') {
  message.textContent = text;
  message.className = `notice ${kind}`;
  message.hidden = !text;
}

function renderUpload(state) {
  $('sent').textContent = state.sent;
  $('acked').textContent = state.acked;
  $('pending').textContent = state.pending;
  $('bytes').textContent = formatBytes(state.bytesAcked);
  $('network').hidden = state.online;
  if (state.error) {
    const why = state.error.status === 401 ? 'the server refused the upload token' : state.error.message;
    show(`Upload stopped: ${why}. Recorded chunks are kept in this browser.`, 'error');
  }
}

function makeUploader(rec) {
  return new Uploader({ recording: { id: rec.id, token: rec.token }, store, onChange: renderUpload });
}

/** The owner's "Share": a signed link that opens the recording (private
 * or not) until it expires. */
let shareFor = null;
async function makeShare() {
  if (!shareFor) return;
  try {
    const link = await api(`/api/recordings/${encodeURIComponent(shareFor.id)}/share`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${shareFor.token}` },
      body: JSON.stringify({ expires_in_s: Number($('share-expiry').value) }),
    });
    const a = $('share-link');
    a.href = link.watch;
    a.textContent = absolute(link.watch);
    $('share-expires').textContent = ` (until ${new Date(link.expires_at).toLocaleString()})`;
    $('share-result').hidden = false;
  } catch (err) {
    show(`Cannot make a share link: ${err.message}`, 'error');
  }
}
$('make-share').addEventListener('click', makeShare);

function showShare(rec) {
  shareFor = rec;
  $('share').hidden = false;
  const link = $('watch-link');
  link.href = rec.watch;
  link.textContent = absolute(rec.watch);
}

async function acquire() {
  for (const track of stream?.getTracks() ?? []) track.stop();
  const videoId = $('camera').value;
  const audioId = $('microphone').value;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: videoId ? { deviceId: { exact: videoId } } : { width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: audioId ? { deviceId: { exact: audioId } } : true,
    });
  } catch (err) {
    startButton.disabled = true;
    const reasons = {
      NotAllowedError: 'Camera and microphone access was denied. Allow it in the browser’s site settings, then reload.',
      NotFoundError: 'No camera or microphone was found. Connect one, then reload.',
      NotReadableError: 'The camera is in use by another application.',
    };
    show(reasons[err.name] ?? `Cannot open the camera: ${err.message}`, 'error');
    return;
  }
  preview.srcObject = stream;
  await listDevices();
  startButton.disabled = false;
  if (message.classList.contains('error')) show('');
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[$('camera'), 'videoinput'], [$('microphone'), 'audioinput']]) {
    const current = stream.getTracks().find((t) => t.kind === kind.replace('input', ''))?.getSettings().deviceId;
    select.replaceChildren(
      ...devices
        .filter((d) => d.kind === kind)
        .map((d, i) => new Option(d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`, d.deviceId, false, d.deviceId === current)),
    );
  }
}

async function start() {
  startButton.disabled = true;
  const [mimeType, label] = MIME_CANDIDATES.find(([t]) => MediaRecorder.isTypeSupported(t)) ?? ['', 'the browser’s default format'];
  let created;
  try {
    created = await api('/api/recordings', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      // No type declared for the browser's default: the server reads it from the bytes.
      body: JSON.stringify({
        title: $('title').value,
        mime: mimeType || undefined,
        access: $('private').checked ? 'private' : 'public',
        encrypt: $('encrypt').checked,
      }),
    });
  } catch (err) {
    show(`Cannot start a recording: ${err.message}`, 'error');
    startButton.disabled = false;
    return;
  }
  const rec = { id: created.id, token: created.upload_token, title: created.title, watch: created.watch, nextSeq: 0, total: null, createdAt: Date.now() };
  // A private recording's own page watches and reads comments through a
  // share link of its own (a socket cannot send the upload token).
  let viewToken = null;
  if (created.access === 'private') {
    try {
      const link = await api(`/api/recordings/${encodeURIComponent(created.id)}/share`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${created.upload_token}` },
        body: JSON.stringify({}),
      });
      viewToken = link.token;
      rec.watch = link.watch;
    } catch (err) {
      show(`Cannot make the recording's own link: ${err.message}`, 'error');
    }
  }
  await store.saveRecording(rec);
  uploader = makeUploader(rec);
  showShare(rec);
  comments?.stop();
  comments = mountComments($('comments'), { id: rec.id, token: viewToken });
  $('comments').hidden = false;

  recorder = new MediaRecorder(stream, {
    ...(mimeType ? { mimeType } : {}),
    videoKeyFrameIntervalDuration: KEYFRAME_INTERVAL_MS,
  });
  $('format').textContent = `Recording ${label}${recorder.mimeType ? ` (${recorder.mimeType})` : ''}`;
  $('format').hidden = false;
  document.body.dataset.recordingMime = recorder.mimeType || mimeType;
  // Chunks are stored strictly in the order MediaRecorder produced them.
  let stored = Promise.resolve();
  let nextSeq = 0;
  const watchdog = watchRecorder();
  recorder.ondataavailable = (event) => {
    if (!event.data || event.data.size === 0) return;
    watchdog.bytes();
    const seq = nextSeq++;
    const bytes = event.data.arrayBuffer();
    stored = stored.then(async () => uploader.add(seq, new Uint8Array(await bytes)));
  };
  recorder.onstop = async () => {
    await stored;
    clearInterval(timer);
    watchdog.stop();
    $('live-badge').hidden = true;
    show('Finishing the upload…');
    await uploader.setTotal(nextSeq);
    await finishUpload(rec, uploader);
  };
  recorder.start(TIMESLICE_MS);
  startedAt = Date.now();
  document.body.dataset.recordingStartedAt = String(startedAt);
  document.body.dataset.recordingId = rec.id;
  timer = setInterval(() => ($('elapsed').textContent = formatDuration((Date.now() - startedAt) / 1000)), 250);
  stopButton.disabled = false;
  for (const select of [$('camera'), $('microphone')]) select.disabled = true;
}

/** LIVE once the recorder hands over bytes; a warning instead while it
 * has handed over none for {@link SILENT_RECORDER_MS}. */
function watchRecorder() {
  let last = Date.now();
  const warning = $('recorder-warning');
  const check = setInterval(() => {
    const silent = Date.now() - last >= SILENT_RECORDER_MS;
    if (silent && warning.hidden) {
      warning.textContent =
        `This browser has recorded nothing for ${Math.round((Date.now() - last) / 1000)} s: its recorder hands over no data, ` +
        'so viewers see nothing. Stop, and try another camera or another browser (Chrome, Firefox).';
      warning.hidden = false;
      $('live-badge').hidden = true;
    }
  }, 500);
  return {
    bytes() {
      last = Date.now();
      warning.hidden = true;
      $('live-badge').hidden = false;
    },
    stop() {
      clearInterval(check);
      warning.hidden = true;
    },
  };
}

function stop() {
  stopButton.disabled = true;
  recorder?.stop();
}

async function finishUpload(rec, up) {
  try {
    await up.done();
    show('');
    const done = document.createElement('p');
    done.className = 'notice ok';
    done.id = 'uploaded';
    done.append('Recording uploaded. ');
    const link = Object.assign(document.createElement('a'), { href: rec.watch, textContent: 'Watch it' });
    done.append(link);
    message.after(done);
    startButton.disabled = false;
    for (const select of [$('camera'), $('microphone')]) select.disabled = false;
  } catch {
    // renderUpload already shows why.
  }
}

/** Recordings a previous page left unfinished: offer to upload the rest. */
async function offerResume() {
  const unfinished = await store.listRecordings();
  const box = $('resume');
  box.hidden = unfinished.length === 0;
  box.replaceChildren();
  if (unfinished.length === 0) return;
  box.append(Object.assign(document.createElement('strong'), { textContent: 'Unfinished uploads from an earlier visit' }));
  for (const rec of unfinished) {
    const waiting = (await store.pendingChunks(rec.id)).length;
    const button = Object.assign(document.createElement('button'), {
      type: 'button',
      className: 'primary',
      textContent: `Resume upload of “${rec.title}”`,
    });
    button.addEventListener('click', async () => {
      button.disabled = true;
      uploader = makeUploader(rec);
      showShare(rec);
      await uploader.resume();
      if (uploader.total == null) await uploader.setTotal(rec.nextSeq ?? 0);
      await finishUpload(rec, uploader);
      await offerResume();
    });
    const row = document.createElement('div');
    row.className = 'row';
    row.append(button, Object.assign(document.createElement('span'), { className: 'muted', textContent: `${waiting} chunk(s) waiting` }));
    box.append(row);
  }
}

window.addEventListener('online', () => uploader?.nudge());
window.addEventListener('offline', () => ($('network').hidden = false));
startButton.addEventListener('click', start);
stopButton.addEventListener('click', stop);
$('camera').addEventListener('change', acquire);
$('microphone').addEventListener('change', acquire);
$('copy-watch').addEventListener('click', (e) => copyText($('watch-link').textContent, e.target));

const opened = await openStore();
store = opened.store;
if (!opened.durable) show('This browser cannot keep chunks on disk: keep this page open until the upload finishes.');
if (!window.MediaRecorder || !navigator.mediaDevices) {
  show('This browser cannot record video (no MediaRecorder). Try a current Chrome, Firefox or Safari.', 'error');
} else {
  await offerResume();
  await acquire();
}
