// Library page: every recording, newest first; live ones update in place.
import { api, absolute, copyText, el, formatDuration, STATE_LABELS } from './common.js';

const list = document.getElementById('library');
const message = document.getElementById('message');
const REFRESH_MS = 3000;

function card(rec) {
  const poster = el('a', { className: 'poster', href: rec.watch, title: `Watch ${rec.title}` });
  if (rec.poster) poster.append(el('img', { src: rec.poster, alt: '', loading: 'lazy' }));
  else poster.append(rec.state === 'failed' ? '⚠' : '▶');
  const created = new Date(rec.created_at);
  const copy = el('button', { type: 'button', textContent: 'Copy playlist URL' });
  copy.addEventListener('click', () => copyText(absolute(rec.hls), copy));
  const duration = rec.state === 'ready' ? formatDuration(rec.duration_s) : `${formatDuration(rec.duration_s)} so far`;
  return el(
    'article',
    { className: 'card item', dataset: { id: rec.id, state: rec.state } },
    poster,
    el(
      'div',
      { className: 'meta' },
      el('div', { className: 'row' }, el('span', { className: `badge ${rec.state}`, textContent: STATE_LABELS[rec.state] ?? rec.state })),
      el('a', { className: 'title', href: rec.watch, textContent: rec.title }),
      el('div', { className: 'muted', textContent: `${duration} · ${created.toLocaleString()}` }),
      rec.error ? el('div', { className: 'muted', textContent: rec.error }) : '',
      el('div', { className: 'row' }, el('a', { className: 'button', href: rec.watch, textContent: 'Watch' }), copy),
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
  setTimeout(refresh, REFRESH_MS);
}

refresh();
