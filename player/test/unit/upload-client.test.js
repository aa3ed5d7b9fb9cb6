// Unit tests of the upload client: queue, retry, resume. A fake server
// stands behind the injected fetch; sleeps are recorded, not waited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { Uploader, backoffMs, contentDigest, DEFAULTS } from '../../public/upload-client.js';
import { MemoryStore } from '../../public/chunk-store.js';

const REC = { id: 'abc123', token: 't0ken' };

/** A scripted stand-in for segcast's chunk API. `script(seq, attempt)` may
 * return 'network' (throw), a status number, or undefined (normal). */
class FakeServer {
  constructor(script = () => undefined) {
    this.script = script;
    this.stored = new Map();
    this.requests = [];
    this.finishes = [];
    this.attempts = new Map();
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.gates = []; // hold responses to reorder them
    this.hold = false;
  }

  fetch = async (url, init) => {
    this.requests.push({ url, init });
    if (url.endsWith('/finish')) {
      this.finishAttempts = (this.finishAttempts ?? 0) + 1;
      const verdict = this.script('finish', this.finishAttempts);
      if (verdict === 'network') throw new TypeError('fetch failed');
      this.finishes.push(JSON.parse(init.body));
      return json(verdict ?? 202, {});
    }
    const seq = Number(url.split('/').pop());
    const attempt = (this.attempts.get(seq) ?? 0) + 1;
    this.attempts.set(seq, attempt);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.hold) await new Promise((resolve) => this.gates.push(resolve));
      const verdict = this.script(seq, attempt);
      if (verdict === 'network') throw new TypeError('fetch failed');
      if (typeof verdict === 'number') return json(verdict, { error: `scripted ${verdict}` });
      assert.equal(init.headers.Authorization, `Bearer ${REC.token}`);
      const sha = createHash('sha256').update(init.body).digest('base64');
      assert.equal(init.headers['Content-Digest'], `sha-256=:${sha}:`);
      const again = this.stored.has(seq);
      this.stored.set(seq, Buffer.from(init.body));
      return json(again ? 200 : 201, { seq });
    } finally {
      this.inFlight -= 1;
    }
  };
}

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

function chunk(seq) {
  return new TextEncoder().encode(`chunk-${seq}-`.repeat(seq + 1));
}

function uploader(server, store = new MemoryStore(), extra = {}) {
  const sleeps = [];
  const up = new Uploader({
    recording: REC,
    store,
    fetchFn: server.fetch,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    random: () => 0.5,
    ...extra,
  });
  return { up, sleeps, store };
}

test('uploads every chunk once, then finishes with the total', async () => {
  const server = new FakeServer();
  const { up, store } = uploader(server);
  for (let seq = 0; seq < 5; seq += 1) await up.add(seq, chunk(seq));
  await up.setTotal(5);
  const state = await up.done();
  assert.deepEqual([...server.stored.keys()].sort(), [0, 1, 2, 3, 4]);
  assert.deepEqual(server.finishes, [{ chunks: 5 }]);
  assert.equal(state.acked, 5);
  assert.equal(state.pending, 0);
  assert.deepEqual(await store.pendingChunks(REC.id), [], 'acknowledged chunks leave the store');
  assert.equal(await store.getRecording(REC.id), undefined);
});

test('5xx and network errors are retried with growing, jittered backoff', async () => {
  const server = new FakeServer((seq, attempt) => {
    if (seq === 1 && attempt === 1) return 503;
    if (seq === 1 && attempt === 2) return 'network';
    if (seq === 1 && attempt === 3) return 500;
    return undefined;
  });
  const { up, sleeps } = uploader(server);
  await up.add(0, chunk(0));
  await up.add(1, chunk(1));
  await up.setTotal(2);
  const state = await up.done();
  assert.equal(server.attempts.get(1), 4);
  assert.equal(state.retries, 3);
  assert.equal(state.online, true, 'back online after the network error');
  // random() = 0.5 → 3/4 of the capped exponential ceiling.
  assert.deepEqual(sleeps, [375, 750, 1500]);
});

test('backoff stays within [ceiling/2, ceiling] and is capped', () => {
  const opts = { baseDelayMs: 100, maxDelayMs: 1000 };
  assert.equal(backoffMs(1, opts, () => 0), 50);
  assert.equal(backoffMs(1, opts, () => 1), 100);
  assert.equal(backoffMs(3, opts, () => 1), 400);
  assert.equal(backoffMs(20, opts, () => 0), 500);
  assert.equal(backoffMs(20, opts, () => 1), 1000);
});

test('401 stops everything and says why; nothing is retried', async () => {
  const server = new FakeServer(() => 401);
  const { up, store } = uploader(server);
  await up.add(0, chunk(0));
  await up.add(1, chunk(1));
  await up.setTotal(2);
  await assert.rejects(up.done(), (err) => err.status === 401 && err.message === 'scripted 401');
  const chunkRequests = server.requests.filter((r) => !r.url.endsWith('/finish'));
  assert.ok(chunkRequests.length <= 2, 'no retries after 401');
  assert.equal(server.finishes.length, 0);
  assert.equal((await store.pendingChunks(REC.id)).length, 2, 'unsent chunks are kept');
});

test('other 4xx are not retried', async () => {
  const server = new FakeServer((seq) => (seq === 0 ? 413 : undefined));
  const { up } = uploader(server, new MemoryStore(), { maxInFlight: 1 });
  await up.add(0, chunk(0));
  await assert.rejects(up.done(), (err) => err.status === 413);
  assert.equal(server.attempts.get(0), 1);
});

test('a duplicate ack (200) counts as acknowledged', async () => {
  const server = new FakeServer();
  server.stored.set(0, Buffer.from(chunk(0))); // the server already had it
  const { up } = uploader(server);
  await up.add(0, chunk(0));
  await up.setTotal(1);
  const state = await up.done();
  assert.equal(state.acked, 1);
  assert.deepEqual(server.finishes, [{ chunks: 1 }]);
});

test('in-flight requests are bounded and out-of-order answers are fine', async () => {
  const server = new FakeServer();
  server.hold = true;
  const { up } = uploader(server, new MemoryStore(), { maxInFlight: 2 });
  for (let seq = 0; seq < 6; seq += 1) await up.add(seq, chunk(seq));
  await up.setTotal(6);
  // Release held responses newest first, until everything is through.
  while (server.stored.size < 6) {
    await new Promise((resolve) => setImmediate(resolve));
    const gate = server.gates.pop();
    if (gate) gate();
  }
  await up.done();
  assert.equal(server.maxInFlight, 2);
  assert.deepEqual(server.finishes, [{ chunks: 6 }]);
});

test('offline then online: waiting chunks go as soon as nudged', async () => {
  let offline = true;
  const server = new FakeServer(() => (offline ? 'network' : undefined));
  const pendingSleeps = [];
  const up = new Uploader({
    recording: REC,
    store: new MemoryStore(),
    fetchFn: server.fetch,
    sleep: () => new Promise((resolve) => pendingSleeps.push(resolve)), // never fires by itself
  });
  await up.add(0, chunk(0));
  await up.setTotal(1);
  while (up.state.retries === 0) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(up.state.online, false);
  assert.equal(up.state.pending, 1);
  offline = false;
  up.nudge(); // what the page does on the browser's 'online' event
  const state = await up.done();
  assert.equal(state.online, true);
  assert.deepEqual(server.finishes, [{ chunks: 1 }]);
});

test('resume uploads what a previous page left in the store', async () => {
  const store = new MemoryStore();
  // A previous page stored 4 chunks, got 0 and 2 acknowledged, then died.
  await store.saveRecording({ ...REC, title: 'x', nextSeq: 4, total: 4 });
  await store.putChunk(REC.id, 1, chunk(1));
  await store.putChunk(REC.id, 3, chunk(3));
  const server = new FakeServer();
  const { up } = uploader(server, store);
  await up.resume();
  await up.done();
  assert.deepEqual([...server.stored.keys()].sort(), [1, 3]);
  assert.deepEqual(server.finishes, [{ chunks: 4 }]);
});

test('finish is retried on 5xx and network errors', async () => {
  const server = new FakeServer((seq, attempt) => {
    if (seq !== 'finish') return undefined;
    return attempt === 1 ? 'network' : attempt === 2 ? 502 : undefined;
  });
  const { up } = uploader(server);
  await up.add(0, chunk(0));
  await up.setTotal(1);
  await up.done();
  assert.equal(server.requests.filter((r) => r.url.endsWith('/finish')).length, 3);
});

test('contentDigest matches RFC 9530 example', async () => {
  const body = new TextEncoder().encode('{"hello": "world"}\n');
  assert.equal(await contentDigest(body), 'sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:');
  assert.equal(DEFAULTS.maxInFlight, 3);
});

test('storing a chunk advances the recording past it', async () => {
  const store = new MemoryStore();
  await store.saveRecording({ ...REC, nextSeq: 0, total: null });
  await store.putChunk(REC.id, 4, chunk(4));
  await store.putChunk(REC.id, 2, chunk(2));
  assert.equal((await store.getRecording(REC.id)).nextSeq, 5);
});
