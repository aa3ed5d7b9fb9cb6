// Record in Chromium, watch near-live, then replay: the whole user promise
// against a real segcast with real ffmpeg.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import {
  REPO,
  SCREENSHOTS,
  listedEndS,
  recordFor,
  recordVp8,
  sharedServerAndBrowser,
  startRecording,
  status,
  uploadCounters,
  waitForStatus,
} from './harness.js';

const shared = sharedServerAndBrowser();

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

test('a recording is watchable while live, then ready and seekable', async () => {
  const context = await shared.browser.newContext({ viewport: { width: 1280, height: 800 } });
  // E2E_NO_H264=1 makes the page record VP8 as on Firefox (the transcoding
  // path), to measure its latency (benchmarks.md).
  const noH264 = process.env.E2E_NO_H264 === '1';
  if (noH264) await recordVp8(context);
  const recorder = await context.newPage();
  const { id, startedAt } = await startRecording(recorder, shared.server.base, 'E2E live recording');

  const watcher = await context.newPage();
  await watcher.goto(`${shared.server.base}/watch/${id}`);
  await watcher.getByText('Live', { exact: true }).waitFor();

  // While it records: playback starts and advances, and we sample how far
  // behind the recording the player is.
  await watcher.waitForFunction(() => document.getElementById('video').currentTime > 0.5, null, { timeout: 30000 });
  const latencies = [];
  const serverLags = [];
  const playerHolds = [];
  let previous = -1;
  let advanced = 0;
  // At least 4 s of samples, even when a busy machine started playback late.
  // E2E_LIVE_S records longer, to measure the steady state (benchmarks.md).
  const liveMs = 1000 * Number(process.env.E2E_LIVE_S ?? 10);
  const sampleUntil = Math.max(startedAt + liveMs, Date.now() + 4000);
  const steady = [];
  while (Date.now() < sampleUntil) {
    const [[t, hlsLatency, target, rate], listed] = await Promise.all([
      watcher.evaluate(() => {
        const hls = window.segcastHls;
        const v = document.getElementById('video');
        const ranges = [...Array(v.buffered.length).keys()].map((i) => `${v.buffered.start(i).toFixed(2)}-${v.buffered.end(i).toFixed(2)}`).join(',');
        return [v.currentTime, hls?.latency, hls?.targetLatency, `${v.playbackRate} buffered ${ranges}`];
      }),
      listedEndS(shared.server.base, id),
    ]);
    const elapsed = (Date.now() - startedAt) / 1000;
    latencies.push(elapsed - t);
    // Past the start-up (the first 10 s): a viewer who joins a recording
    // under way starts here.
    if (elapsed > 10) steady.push([elapsed - t, elapsed - listed, listed - t]);
    // The two halves of the chain: camera → part listed (browser, upload,
    // ffmpeg, packager) and part listed → on screen (hls.js hold-back).
    serverLags.push(elapsed - listed);
    playerHolds.push(listed - t);
    console.log(`sample elapsed ${elapsed.toFixed(2)} t ${t.toFixed(2)} listed ${listed.toFixed(2)} hls.latency ${hlsLatency?.toFixed(2)} target ${target?.toFixed(2)} rate ${rate}`);
    if (t > previous) advanced += 1;
    previous = t;
    await watcher.waitForTimeout(500);
  }
  assert.equal((await status(shared.server.base, id)).state, 'recording', 'still live while sampled');
  assert.ok(advanced >= 4, `currentTime advanced only ${advanced} times while live`);
  await recorder.screenshot({ path: join(SCREENSHOTS, 'record-desktop.png') });
  await watcher.screenshot({ path: join(SCREENSHOTS, 'watch-live-desktop.png') });

  await recordFor(recorder, startedAt, sampleUntil - startedAt);
  await recorder.getByRole('button', { name: /Stop/ }).click();
  const recordedS = (Date.now() - startedAt) / 1000;
  await recorder.locator('#uploaded').waitFor({ timeout: 60000 });
  const ready = await waitForStatus(shared.server.base, id, (s) => s.state !== 'recording' && s.state !== 'processing');
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  assert.ok(Math.abs(ready.duration_s - recordedS) <= 1.5, `duration ${ready.duration_s} s for ${recordedS} s recorded`);
  assert.deepEqual(ready.chunks.missing, []);
  assert.equal(ready.chunks.received, ready.chunks.total);
  // Chromium offers H.264: the page asks for it with 1 s keyframes, and
  // the server publishes the browser's video as it came.
  const mime = await recorder.evaluate(() => document.body.dataset.recordingMime);
  if (noH264) {
    assert.equal(ready.video, 'transcode', JSON.stringify(ready));
  } else {
    assert.match(mime, /h264|avc1/i, `the page records H.264 where Chromium offers it: ${mime}`);
    assert.match(await recorder.locator('#format').textContent(), /H\.264/);
    assert.equal(ready.video, 'copy', `H.264 with 1 s keyframes is copied: ${JSON.stringify(ready)}`);
  }

  // Replays as a normal video: full duration and seeking.
  await watcher.reload();
  await watcher.getByText('Ready', { exact: true }).waitFor();
  await watcher.waitForFunction(() => document.getElementById('video').duration > 5, null, { timeout: 30000 });
  const duration = await watcher.evaluate(() => document.getElementById('video').duration);
  assert.ok(Math.abs(duration - ready.duration_s) < 1, `player duration ${duration} vs ${ready.duration_s}`);
  await watcher.evaluate(() => {
    const v = document.getElementById('video');
    v.currentTime = 2;
    return v.play();
  });
  await watcher.waitForFunction(() => document.getElementById('video').currentTime > 2.5, null, { timeout: 15000 });

  latencies.sort((a, b) => a - b);
  const p50 = latencies[Math.floor(latencies.length / 2)];
  console.log(`near-live latency (recording elapsed − video.currentTime): p50 ${p50.toFixed(2)} s, max ${latencies.at(-1).toFixed(2)} s over ${latencies.length} samples`);
  console.log(`  of which camera → listed in the playlist: p50 ${median(serverLags).toFixed(2)} s; listed → playing: p50 ${median(playerHolds).toFixed(2)} s`);
  if (steady.length > 0) {
    const [total, lag, hold] = [0, 1, 2].map((i) => median(steady.map((x) => x[i])).toFixed(2));
    console.log(`  after the first 10 s (${steady.length} samples): p50 ${total} s = camera → listed ${lag} s + listed → playing ${hold} s`);
  }

  const library = await context.newPage();
  await library.goto(`${shared.server.base}/`);
  await library.locator(`[data-id="${id}"] img`).waitFor();
  await library.screenshot({ path: join(SCREENSHOTS, 'library-desktop.png') });
  await watcher.screenshot({ path: join(SCREENSHOTS, 'watch-ready-desktop.png') });
  const phone = await shared.browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  for (const [name, path] of [['library', '/'], ['watch', `/watch/${id}`], ['record', '/record']]) {
    const page = await phone.newPage();
    await page.goto(`${shared.server.base}${path}`);
    await page.waitForLoadState('networkidle').catch(() => {});
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-phone.png`), fullPage: true });
  }
  await phone.close();
  await context.close();
});

test('reloading mid-recording resumes the upload and completes it', async () => {
  const context = await shared.browser.newContext();
  const page = await context.newPage();
  const { id, startedAt } = await startRecording(page, shared.server.base, 'E2E reload');
  await page.waitForFunction(() => Number(document.getElementById('acked').textContent) >= 2, null, { timeout: 20000 });
  // Chunk uploads now fail at the network level; chunks pile up in IndexedDB.
  await page.route('**/chunks/**', (route) => route.abort('internetdisconnected'));
  await page.waitForFunction(() => Number(document.getElementById('pending').textContent) >= 3, null, { timeout: 20000 });
  const before = await uploadCounters(page);
  await page.unroute('**/chunks/**');
  await page.reload();
  // The reload stopped the recorder: no more media than this was recorded.
  const recordedAtMostS = (Date.now() - startedAt) / 1000;

  const resume = page.getByRole('button', { name: /Resume upload/ });
  await resume.waitFor();
  await resume.click();
  await page.locator('#uploaded').waitFor({ timeout: 60000 });
  const ready = await waitForStatus(shared.server.base, id, (s) => s.state !== 'recording' && s.state !== 'processing');
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  assert.ok(ready.chunks.total >= before.acked + before.pending, JSON.stringify({ before, ready }));
  assert.equal(ready.chunks.received, ready.chunks.total);
  // The record page's MediaRecorder hands over a chunk every 0.25 s.
  assert.ok(ready.duration_s >= ready.chunks.total * 0.25 - 0.5, `duration ${ready.duration_s} s for ${ready.chunks.total} chunks`);
  // Resumed chunks are stored once: no more media than the time recorded
  // (a wall-clock figure that load can only make larger).
  assert.ok(ready.duration_s <= recordedAtMostS + 0.5, `duration ${ready.duration_s} s after ${recordedAtMostS} s of recording`);
  // The browser's store is empty again: nothing is offered twice.
  await page.reload();
  await page.getByRole('button', { name: /Start/ }).waitFor();
  assert.equal(await page.getByRole('button', { name: /Resume upload/ }).count(), 0);
  await context.close();
});

test('a few seconds offline lose nothing', async () => {
  const context = await shared.browser.newContext();
  const page = await context.newPage();
  const { id, startedAt } = await startRecording(page, shared.server.base, 'E2E offline');
  await recordFor(page, startedAt, 3000);
  await context.setOffline(true);
  await page.locator('#network').waitFor({ state: 'visible' });
  await recordFor(page, startedAt, 6500);
  const offline = await uploadCounters(page);
  assert.ok(offline.pending >= 2, `chunks should wait while offline: ${JSON.stringify(offline)}`);
  await context.setOffline(false);
  await recordFor(page, startedAt, 9000);
  await page.getByRole('button', { name: /Stop/ }).click();
  const recordedS = (Date.now() - startedAt) / 1000;
  await page.locator('#uploaded').waitFor({ timeout: 60000 });
  const ready = await waitForStatus(shared.server.base, id, (s) => s.state !== 'recording' && s.state !== 'processing');
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  assert.equal(ready.chunks.received, ready.chunks.total);
  assert.ok(Math.abs(ready.duration_s - recordedS) <= 1.5, `duration ${ready.duration_s} s for ${recordedS} s recorded`);
  await context.close();
});

test('the pages inside the binary load with every script and style', async () => {
  // The server runs from an empty directory without --player-dir
  // (harness.js): these come from the binary itself.
  const created = await fetch(`${shared.server.base}/api/recordings`, { method: 'POST', body: '{}' });
  assert.equal(created.status, 201);
  const { id } = await created.json();
  const context = await shared.browser.newContext();
  const page = await context.newPage();
  const loads = [];
  const errors = [];
  page.on('response', (r) => {
    const type = r.request().resourceType();
    if (['document', 'script', 'stylesheet'].includes(type)) loads.push({ url: r.url(), status: r.status(), type });
  });
  page.on('pageerror', (e) => errors.push(e.message));
  for (const path of ['/', '/record', `/watch/${id}`]) {
    loads.length = 0;
    await page.goto(`${shared.server.base}${path}`, { waitUntil: 'load' });
    const scripts = loads.filter((l) => l.type === 'script').map((l) => new URL(l.url).pathname);
    assert.ok(scripts.length > 0, `${path} loads scripts: ${JSON.stringify(loads)}`);
    // 304: the browser revalidated what an earlier page loaded (ETag).
    for (const load of loads) assert.ok([200, 304].includes(load.status), `${path}: ${load.url} ${load.status}`);
    if (path.startsWith('/watch')) {
      assert.ok(scripts.includes('/assets/vendor/hls.min.js'), `hls.js on the watch page: ${scripts}`);
      assert.equal(await page.evaluate(() => typeof window.Hls), 'function');
    }
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test('a recorder that hands over nothing is reported, and the page does not say LIVE', async () => {
  const context = await shared.browser.newContext();
  // WebKit's case on some machines: every blob empty.
  await context.addInitScript(() => {
    const Recorder = window.MediaRecorder;
    window.MediaRecorder = class extends Recorder {
      set ondataavailable(handler) {
        super.ondataavailable = () => handler({ data: new Blob([]) });
      }
      get ondataavailable() {
        return super.ondataavailable;
      }
    };
  });
  const page = await context.newPage();
  const { startedAt } = await startRecording(page, shared.server.base, 'E2E silent recorder');
  const warning = page.locator('#recorder-warning');
  await warning.waitFor({ state: 'visible', timeout: 5000 });
  const after = (Date.now() - startedAt) / 1000;
  assert.match(await warning.textContent(), /recorded nothing/);
  assert.equal(await page.locator('#live-badge').isVisible(), false, 'no LIVE while nothing is recorded');
  assert.equal(Number(await page.locator('#sent').textContent()), 0);
  console.log(`silent recorder reported ${after.toFixed(1)} s after the start`);
  await page.getByRole('button', { name: /Stop/ }).click();
  await warning.waitFor({ state: 'hidden' });
  await context.close();
});

test('a watch page whose browser refuses to start playback says to press play', async () => {
  // A finished recording, uploaded as the browser would (real Chromium chunks).
  const dir = join(REPO, 'tests/fixtures/mediarecorder/chrome-h264-opus-kf1s');
  const created = await (await fetch(`${shared.server.base}/api/recordings`, { method: 'POST', body: '{}' })).json();
  const names = readdirSync(dir).sort();
  for (const [seq, name] of names.entries()) {
    const put = await fetch(`${shared.server.base}/api/recordings/${created.id}/chunks/${seq}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${created.upload_token}` },
      body: readFileSync(join(dir, name)),
    });
    assert.equal(put.status, 201);
  }
  const finish = await fetch(`${shared.server.base}/api/recordings/${created.id}/finish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${created.upload_token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ chunks: names.length }),
  });
  assert.equal(finish.status, 202);
  await waitForStatus(shared.server.base, created.id, (s) => s.state === 'ready');
  const context = await shared.browser.newContext();
  // An autoplay policy that refuses (Safari's, WebKit's without a gesture).
  await context.addInitScript(() => {
    window.realPlay = HTMLMediaElement.prototype.play;
    HTMLMediaElement.prototype.play = () => Promise.reject(new DOMException('no gesture', 'NotAllowedError'));
  });
  const page = await context.newPage();
  await page.goto(`${shared.server.base}/watch/${created.id}`);
  const notice = page.locator('#message');
  await notice.getByText('press ▶').waitFor({ timeout: 20000 });
  // The viewer presses play: the notice goes.
  await page.evaluate(() => window.realPlay.call(document.getElementById('video')));
  await notice.waitFor({ state: 'hidden', timeout: 20000 });
  await context.close();
});
