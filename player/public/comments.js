// Comments panel (docs/http-contract.md, "Comments"): a recording's
// comments, live over a WebSocket, each with the media time it was written
// at. The watch page posts and seeks; the record page shows them read-only
// so the person recording sees the viewers.
//
// Safety: comments are other people's text. Everything is rendered with
// textContent and element properties, never innerHTML, so markup in a
// comment shows as the characters it is.
import { api, el, formatDuration } from './common.js';

const AUTHOR_KEY = 'segcast.commentAuthor';
/** Reconnect delays: doubling from the first, capped, with jitter so a
 * restarted server is not hit by every viewer at the same instant. */
const BACKOFF = { firstMs: 500, maxMs: 15000 };

function rememberedAuthor() {
  try {
    return localStorage.getItem(AUTHOR_KEY) ?? '';
  } catch {
    return ''; // storage disabled: the name is simply not remembered
  }
}

function rememberAuthor(name) {
  try {
    localStorage.setItem(AUTHOR_KEY, name);
  } catch {
    /* see rememberedAuthor */
  }
}

/**
 * Fills `root` with the comments of recording `id` and keeps them live.
 * Options: `getMediaTime()` stamps posts (omit it for a read-only panel);
 * `seek(seconds)` makes each timestamp a button that seeks there.
 * Returns `{ stop() }`. `root.dataset.socket` is `open` while live.
 */
export function mountComments(root, { id, getMediaTime = null, seek = null, token = null }) {
  // A private recording's viewer carries its share token on every request.
  const query = token ? `?token=${encodeURIComponent(token)}` : '';
  const base = `/api/recordings/${encodeURIComponent(id)}/comments${query}`;
  const list = el('ol', { className: 'comment-list' });
  list.setAttribute('aria-live', 'polite');
  const empty = el('p', { className: 'muted comment-empty', textContent: 'No comments yet.' });
  const state = el('span', { className: 'muted comment-state', textContent: 'connecting…' });
  const header = el('div', { className: 'row comment-head' }, el('strong', { textContent: 'Comments' }), state);
  root.replaceChildren(header, list, empty);
  const items = new Map(); // comment id → <li>

  function render(comment) {
    const at = formatDuration(comment.media_time_s);
    const time = seek
      ? el('button', { type: 'button', className: 'comment-time', textContent: at, title: `Play from ${at}` })
      : el('span', { className: 'comment-time', textContent: at });
    if (seek) time.addEventListener('click', () => seek(comment.media_time_s));
    const li = el(
      'li',
      { className: 'comment', dataset: { commentId: comment.id } },
      time,
      el('strong', { className: 'comment-author', textContent: comment.author }),
      el('p', { className: 'comment-text', textContent: comment.text }),
    );
    return li;
  }

  function add(comment) {
    if (items.has(comment.id)) return;
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    const li = render(comment);
    items.set(comment.id, li);
    list.append(li);
    empty.hidden = true;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function remove(commentId) {
    items.get(commentId)?.remove();
    items.delete(commentId);
    empty.hidden = items.size > 0;
  }

  /** The full list, as GET or the socket's history gives it. */
  function replaceAll(comments) {
    items.clear();
    list.replaceChildren();
    for (const comment of comments) add(comment);
    empty.hidden = items.size > 0;
  }

  // The socket: history first, then every new and deleted comment. After
  // a drop it reconnects with backoff and the history replaces the list,
  // so nothing posted meanwhile is missed.
  let socket = null;
  let attempt = 0;
  let stopped = false;
  let retryTimer = null;

  function setState(text, live) {
    state.textContent = text;
    root.dataset.socket = live ? 'open' : 'closed';
  }

  function onMessage(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === 'history') replaceAll(message.comments);
    else if (message.type === 'comment') add(message);
    else if (message.type === 'deleted') remove(message.id);
    // Other types (posted, error, future ones) are not for this panel.
  }

  function connect() {
    const url = new URL(`/api/recordings/${encodeURIComponent(id)}/comments/ws${query}`, window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    socket = new WebSocket(url);
    socket.addEventListener('open', () => {
      attempt = 0;
      setState('live', true);
    });
    socket.addEventListener('message', onMessage);
    socket.addEventListener('close', async () => {
      setState('reconnecting…', false);
      if (stopped) return;
      // A deleted recording answers 404/410: nothing to reconnect to.
      try {
        await api(base);
      } catch (err) {
        if (err.status === 404 || err.status === 410) {
          setState('recording deleted', false);
          return;
        }
      }
      const delay = Math.min(BACKOFF.maxMs, BACKOFF.firstMs * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      retryTimer = setTimeout(connect, delay);
    });
  }

  if (getMediaTime) root.append(postForm(base, getMediaTime, add));

  (async () => {
    try {
      replaceAll(await api(base));
    } catch {
      /* the socket's history fills the list */
    }
    if (!stopped) connect();
  })();

  return {
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      socket?.close();
    },
  };
}

/** The form that posts a comment stamped with the player's position. */
function postForm(base, getMediaTime, add) {
  const author = el('input', { name: 'author', maxLength: 64, required: true, placeholder: 'Your name', value: rememberedAuthor() });
  author.setAttribute('aria-label', 'Your name');
  author.autocomplete = 'nickname';
  const text = el('textarea', { name: 'text', maxLength: 2000, required: true, rows: 2, placeholder: 'Comment at this moment of the video' });
  text.setAttribute('aria-label', 'Comment');
  const button = el('button', { type: 'submit', className: 'primary', textContent: 'Post' });
  const error = el('p', { className: 'notice error comment-error', hidden: true });
  error.setAttribute('role', 'alert');
  const form = el('form', { className: 'stack comment-form' }, author, text, el('div', { className: 'row' }, button), error);

  // Enter posts, Shift+Enter is a new line.
  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = author.value.trim();
    rememberAuthor(name);
    const body = {
      author: name,
      // The server allows newlines but no other control characters.
      text: text.value.replace(/\t/g, '  '),
      media_time_s: Math.max(0, Number(getMediaTime()) || 0),
    };
    button.disabled = true;
    error.hidden = true;
    try {
      const comment = await api(base, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      add(comment); // the socket brings it too; add() keeps one
      text.value = '';
    } catch (err) {
      error.textContent = `Not posted: ${err.message}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
