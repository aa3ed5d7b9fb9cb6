// Library page: every recording, newest first; live ones update in place.
import { api, absolute, copyText, el, formatDuration, STATE_LABELS } from './common.js';

const list = document.getElementById('library');
const message = document.getElementById('message');
const importInput = document.getElementById('import-file');
const importStatus = document.getElementById('import-status');
const REFRESH_MS = 3000;
let timer;

function card(rec) {
  const poster = el('a', { className: 'poster', href: rec.watch, title: `Watch ${rec.title}` });
  if (rec.poster) poster.append(el('img', { src: rec.poster, alt: '', loading: 'lazy' }));
  else poster.append(rec.state === 'failed' ? '⚠' : '▶');
  const created = new Date(rec.created_at);
  const copy = el('button', { type: 'button', textContent: 'Copy playlist URL' });
  copy.addEventListener('click', () => copyText(absolute(rec.hls), copy));
  const duration = rec.state === 'ready' ? formatDuration(rec.duration_s) : `${formatDuration(rec.duration_s)} so far`;
  const importing = rec.source === 'import' && rec.state === 'processing';
  const detail = importing ? `Importing: ${Math.round((rec.progress ?? 0) * 100)} %` : duration;
  const formats = rec.dash ? 'HLS · DASH' : 'HLS';
  return el(
    'article',
    { className: 'card item', dataset: { id: rec.id, state: rec.state } },
    poster,
    el(
      'div',
      { className: 'meta' },
      el('div', { className: 'row' }, el('span', { className: `badge ${rec.state}`, textContent: STATE_LABELS[rec.state] ?? rec.state })),
      el('a', { className: 'title', href: rec.watch, textContent: rec.title }),
      el('div', { className: 'muted', textContent: `${detail} · ${created.toLocaleString()} · ${formats}` }),
      rec.error ? el('div', { className: 'muted', textContent: rec.error }) : '',
      el(
        'div',
        { className: 'row' },
        el('a', { className: 'button', href: rec.watch, textContent: 'Watch' }),
        rec.dash ? el('a', { className: 'button', href: `${rec.watch}?format=dash`, textContent: 'Watch as DASH' }) : '',
        copy,
      ),
    ),
  );
}

async function refresh() {
  try {
    const recordings = await api('/api/recordings');
    message.hidden = true;
    if (recordings.length === 0) {
      list.replaceChildren(
        el('div', { className: 'card empty' }, el('p', { textContent: 'No recordings yet.' }), el('a', { className: 'button primary', href: '/record', textContent: 'Record the first one' })),
      );
    } else {
      list.replaceChildren(...recordings.map(card));
    }
  } catch (err) {
    message.textContent = `Cannot load the library: ${err.message}`;
    message.hidden = false;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

/** Uploads one file to /api/imports; resolves with the new recording. */
function uploadImport(file, onProgress) {
  // XMLHttpRequest, not fetch: fetch reports no upload progress.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/imports?name=${encodeURIComponent(file.name)}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // not JSON: reported by status below
      }
      if (xhr.status === 201) resolve(body);
      else reject(new Error(body.error ?? `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error('network error'));
    xhr.send(file);
  });
}

document.getElementById('import-button').addEventListener('click', () => importInput.click());

importInput.addEventListener('change', async () => {
  const files = [...importInput.files];
  importInput.value = '';
  importStatus.hidden = false;
  importStatus.classList.remove('error');
  const failures = [];
  for (const [i, file] of files.entries()) {
    const prefix = files.length > 1 ? `(${i + 1}/${files.length}) ` : '';
    try {
      await uploadImport(file, (share) => {
        importStatus.textContent = `${prefix}Uploading ${file.name}: ${Math.round(share * 100)} %`;
      });
    } catch (err) {
      failures.push(`${file.name}: ${err.message}`);
    }
  }
  if (failures.length) {
    importStatus.classList.add('error');
    importStatus.textContent = `Not imported: ${failures.join('; ')}`;
  } else {
    importStatus.textContent = `Uploaded ${files.length} file${files.length > 1 ? 's' : ''}; processing below.`;
  }
  refreshNow();
});

function refreshNow() {
  clearTimeout(timer);
  refresh();
}

refresh();
