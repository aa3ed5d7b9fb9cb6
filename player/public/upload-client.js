// Upload client for segcast's chunk protocol (docs/http-contract.md).
//
// Every chunk is written to durable browser storage *before* it is sent and
// removed only once the server acknowledged it (200/201), so a reload, a tab
// crash or an offline period loses nothing: `resume()` picks up what is left.
// Requests are bounded (maxInFlight), retried with exponential backoff and
// jitter on network errors and 5xx, never on 4xx; a 401 stops everything.
// `finish` is sent once the total is known and every chunk is acknowledged.
//
// No DOM here: fetch, storage, sleep and randomness are injected, so the
// logic runs unchanged under Node's test runner.

export const DEFAULTS = Object.freeze({
  maxInFlight: 3,
  baseDelayMs: 500,
  maxDelayMs: 15000,
});

/** Content-Digest value (RFC 9530) for bytes: `sha-256=:<base64>:`. */
export async function contentDigest(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  let binary = '';
  for (const b of digest) binary += String.fromCharCode(b);
  return `sha-256=:${btoa(binary)}:`;
}

/** Backoff before attempt `attempt` (1-based): exponential, capped, with
 * "equal jitter" so retries of many clients spread out but never hit 0. */
export function backoffMs(attempt, { baseDelayMs, maxDelayMs }, random = Math.random) {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class Uploader {
  /**
   * @param {object} o
   * @param {{id: string, token: string}} o.recording
   * @param {object} o.store  chunk store (chunk-store.js)
   */
  constructor({
    recording,
    store,
    fetchFn = (...args) => fetch(...args),
    baseUrl = '',
    sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    random = Math.random,
    onChange = () => {},
    ...options
  }) {
    this.recording = recording;
    this.store = store;
    this.fetchFn = fetchFn;
    this.baseUrl = baseUrl;
    this.sleep = sleep;
    this.random = random;
    this.onChange = onChange;
    this.options = { ...DEFAULTS, ...options };
    this.pending = new Map(); // seq -> {bytes: number, attempts: number, waiting: boolean}
    this.inFlight = new Set();
    this.total = null;
    this.stats = { sent: 0, acked: 0, bytesAcked: 0, bytesPending: 0, retries: 0 };
    this.online = true;
    this.error = null; // {status, message} once stopped
    this.finished = false;
    this.finishing = false;
    this.wakeups = [];
  }

  /** Snapshot for the UI. */
  get state() {
    return {
      ...this.stats,
      pending: this.pending.size,
      inFlight: this.inFlight.size,
      total: this.total,
      online: this.online,
      error: this.error,
      finished: this.finished,
    };
  }

  /** Stores a chunk durably, then queues it. Resolves once stored. */
  async add(seq, bytes) {
    await this.store.putChunk(this.recording.id, seq, bytes);
    this.queue(seq, bytes.byteLength);
  }

  /** Re-queues whatever the store still holds for this recording. */
  async resume() {
    const saved = await this.store.getRecording(this.recording.id);
    if (saved && saved.total != null) this.total = saved.total;
    for (const { seq, size } of await this.store.pendingChunks(this.recording.id)) {
      this.queue(seq, size);
    }
    this.changed();
    this.maybeFinish();
  }

  /** Declares the number of chunks; `finish` follows the last ack. */
  async setTotal(total) {
    this.total = total;
    const saved = await this.store.getRecording(this.recording.id);
    await this.store.saveRecording({ ...saved, ...this.recording, total });
    this.changed();
    this.maybeFinish();
  }

  /** Retries waiting chunks now (e.g. when the browser is back online). */
  nudge() {
    const wakeups = this.wakeups;
    this.wakeups = [];
    wakeups.forEach((wake) => wake());
  }

  /** Resolves when the recording is finished on the server, or rejects
   * when the upload stopped on an error. */
  done() {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.finished) resolve(this.state);
        else if (this.error) reject(Object.assign(new Error(this.error.message), this.error));
        else this.waiters.push(check);
      };
      this.waiters ??= [];
      check();
    });
  }

  queue(seq, size) {
    if (this.pending.has(seq)) return;
    this.pending.set(seq, { size, attempts: 0, waiting: false });
    this.stats.bytesPending += size;
    this.pump();
  }

  pump() {
    if (this.error) return;
    const ready = [...this.pending.entries()]
      .filter(([seq, entry]) => !entry.waiting && !this.inFlight.has(seq))
      .map(([seq]) => seq)
      .sort((a, b) => a - b);
    for (const seq of ready) {
      if (this.inFlight.size >= this.options.maxInFlight) break;
      this.send(seq);
    }
    this.changed();
  }

  async send(seq) {
    this.inFlight.add(seq);
    const entry = this.pending.get(seq);
    try {
      const bytes = await this.store.getChunk(this.recording.id, seq);
      const url = `${this.baseUrl}/api/recordings/${this.recording.id}/chunks/${seq}`;
      this.stats.sent += 1;
      let response;
      try {
        response = await this.fetchFn(url, {
          method: 'PUT',
          headers: {
            Authorization: `Bearer ${this.recording.token}`,
            'Content-Digest': await contentDigest(bytes),
          },
          body: bytes,
        });
      } catch {
        this.online = false;
        return this.retryLater(seq, entry);
      }
      this.online = true;
      if (response.ok) {
        await this.store.deleteChunk(this.recording.id, seq);
        this.pending.delete(seq);
        this.stats.acked += 1;
        this.stats.bytesAcked += entry.size;
        this.stats.bytesPending -= entry.size;
        this.maybeFinish();
      } else if (isRetryable(response.status)) {
        this.retryLater(seq, entry);
      } else {
        await this.stop(response);
      }
    } finally {
      this.inFlight.delete(seq);
      this.pump();
    }
  }

  retryLater(seq, entry) {
    entry.attempts += 1;
    entry.waiting = true;
    this.stats.retries += 1;
    const wake = () => {
      if (!entry.waiting) return;
      entry.waiting = false;
      this.pump();
    };
    this.wakeups.push(wake);
    this.sleep(backoffMs(entry.attempts, this.options, this.random)).then(wake);
  }

  async maybeFinish() {
    if (this.total == null || this.pending.size > 0 || this.finishing || this.finished || this.error) return;
    this.finishing = true;
    const url = `${this.baseUrl}/api/recordings/${this.recording.id}/finish`;
    for (let attempt = 1; ; attempt += 1) {
      let response = null;
      try {
        response = await this.fetchFn(url, {
          method: 'POST',
          headers: { Authorization: `Bearer ${this.recording.token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ chunks: this.total }),
        });
        this.online = true;
      } catch {
        this.online = false;
      }
      if (response && response.ok) break;
      if (response && !isRetryable(response.status)) {
        this.finishing = false;
        return this.stop(response);
      }
      this.changed();
      await new Promise((resolve) => {
        this.wakeups.push(resolve);
        this.sleep(backoffMs(attempt, this.options, this.random)).then(resolve);
      });
    }
    await this.store.deleteRecording(this.recording.id);
    this.finished = true;
    this.finishing = false;
    this.changed();
  }

  async stop(response) {
    let message = `upload refused (${response.status})`;
    try {
      message = (await response.json()).error || message;
    } catch {
      // Not JSON: keep the generic message.
    }
    this.error = { status: response.status, message };
    this.changed();
  }

  changed() {
    this.onChange(this.state);
    const waiters = this.waiters ?? [];
    this.waiters = [];
    waiters.forEach((check) => check());
  }
}

/** 5xx, 408 (timeout) and 429 (slow down) are worth retrying; other 4xx
 * mean the request itself is wrong and would fail again. */
function isRetryable(status) {
  return status >= 500 || status === 408 || status === 429;
}
