// Small helpers shared by the pages.

/** fetch + JSON, throwing an Error carrying the server's message. */
export async function api(path, init = {}) {
  const response = await fetch(path, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = new Error(body.error || `${response.status} ${response.statusText}`);
    err.status = response.status;
    throw err;
  }
  return body;
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function el(tag, { dataset = {}, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset); // dataset itself is read-only
  for (const child of children) node.append(child);
  return node;
}

/** Absolute URL for a server path (for copying into VLC/ffplay). */
export function absolute(path) {
  return new URL(path, window.location.href).href;
}

export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    if (button) {
      const label = button.textContent;
      button.textContent = 'Copied';
      setTimeout(() => (button.textContent = label), 1500);
    }
  } catch {
    window.prompt('Copy this URL', text);
  }
}

export const STATE_LABELS = { recording: 'Live', processing: 'Processing', ready: 'Ready', failed: 'Failed' };
