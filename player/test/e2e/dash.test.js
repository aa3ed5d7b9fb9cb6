// DASH in dash.js: the watch page plays a recording's manifest while it is
// recorded and once it is ready, from the same files as HLS.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  listedEndS,
  recordFor,
  recordVp8,
  sharedServerAndBrowser,
  startRecording,
  status,
  waitForPlaybackEnd,
  waitForStatus,
} from './harness.js';
import { PLAYERS, openPlayer, waitForPlayer } from './players.js';

const shared = sharedServerAndBrowser();

test('dash.js plays the manifest live and once ready', async () => {
  const context = await shared.browser.newContext();
  const recorder = await context.newPage();
  const { id, startedAt } = await startRecording(recorder, shared.server.base, 'E2E DASH');

  const watcher = await context.newPage();
  await watcher.goto(`${shared.server.base}/watch/${id}?format=dash`);
  // While it records: dash.js plays and moves forward.
  await watcher.waitForFunction(() => window.segcastDash && document.getElementById('video').currentTime > 1, null, { timeout: 40000 });
  const first = await watcher.evaluate(() => document.getElementById('video').currentTime);
  await watcher.waitForFunction((t) => document.getElementById('video').currentTime > t + 1, first, { timeout: 20000 });
  assert.equal((await status(shared.server.base, id)).state, 'recording', 'played while live');
  assert.ok(await watcher.evaluate(() => window.segcastDash.isDynamic()), 'a dynamic manifest');

  await recordFor(recorder, startedAt, 8000);
  await recorder.getByRole('button', { name: /Stop/ }).click();
  await recorder.locator('#uploaded').waitFor({ timeout: 60000 });
  const ready = await waitForStatus(shared.server.base, id, (s) => s.state !== 'recording' && s.state !== 'processing');
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  assert.equal(ready.dash, `/media/${id}/manifest.mpd`);

  // Ready: a static manifest, the whole duration, played from a seek to the end.
  await watcher.reload();
  await watcher.waitForFunction(() => document.getElementById('video').duration > 5, null, { timeout: 30000 });
  const duration = await watcher.evaluate(() => document.getElementById('video').duration);
  assert.ok(Math.abs(duration - ready.duration_s) < 0.5, `dash.js duration ${duration} vs ${ready.duration_s}`);
  await watcher.evaluate(() => {
    const v = document.getElementById('video');
    v.currentTime = v.duration - 2;
    return v.play();
  });
  await waitForPlaybackEnd(watcher, 20000);
  await context.close();
});

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

test('dash.js in low-latency mode follows an encoded recording near the live edge', async () => {
  // VP8 is encoded here on a fixed 2 s keyframe grid: the live manifest
  // addresses segments by number and announces each a part after it starts
  // (availabilityTimeOffset), and the open segment is sent as it grows.
  const context = await shared.browser.newContext();
  await recordVp8(context);
  const recorder = await context.newPage();
  const { id, startedAt } = await startRecording(recorder, shared.server.base, 'E2E LL-DASH');
  const watcher = await context.newPage();
  await watcher.goto(`${shared.server.base}/watch/${id}?format=dash`);
  await watcher.waitForFunction(() => window.segcastDash && document.getElementById('video').currentTime > 1, null, { timeout: 40000 });
  const mpd = await (await fetch(`${shared.server.base}/media/${id}/manifest.mpd`)).text();
  assert.match(mpd, /availabilityTimeComplete="false"/, mpd);
  assert.ok(await watcher.evaluate(() => window.segcastDash.getLowLatencyModeEnabled()), 'dash.js is in low-latency mode');

  // Camera → listed (browser, upload, ffmpeg, packager) and listed →
  // playing (dash.js), sampled past the start-up, as record-watch does.
  const samples = [];
  const sampleUntil = Date.now() + 10000;
  while (Date.now() < sampleUntil) {
    const [[t, dashLatency, rate], listed] = await Promise.all([
      watcher.evaluate(() => [
        document.getElementById('video').currentTime,
        window.segcastDash.getCurrentLiveLatency(),
        document.getElementById('video').playbackRate,
      ]),
      listedEndS(shared.server.base, id),
    ]);
    const elapsed = (Date.now() - startedAt) / 1000;
    samples.push([elapsed - t, elapsed - listed, listed - t]);
    console.log(`sample elapsed ${elapsed.toFixed(2)} t ${t.toFixed(2)} listed ${listed.toFixed(2)} dash.latency ${dashLatency} rate ${rate}`);
    await watcher.waitForTimeout(500);
  }
  assert.equal((await status(shared.server.base, id)).state, 'recording', 'sampled while live');
  const [total, lag, hold] = [0, 1, 2].map((i) => median(samples.map((x) => x[i])));
  console.log(`dash.js low-latency: p50 ${total.toFixed(2)} s = camera → listed ${lag.toFixed(2)} s + listed → playing ${hold.toFixed(2)} s (${samples.length} samples)`);
  // Bounds that hold on a loaded CI machine yet fail on a regression to
  // dash.js's default distance (8.4 s): the figure to watch is the p50
  // printed above, recorded in docs/benchmarks.md (1.7–1.9 s quiet, 2.7 s
  // beside a CI run), not a timing asserted tight.
  assert.ok(hold <= 3, `dash.js plays ${hold.toFixed(2)} s behind the live edge it was offered (p50)`);
  assert.ok(total <= 4, `dash.js sits ${total.toFixed(2)} s behind the camera (p50)`);
  const errors = await watcher.evaluate(() => window.segcastPlayerErrors ?? []);
  assert.deepEqual(errors, []);
  // The same live manifest in Shaka: it follows the number scheme too.
  const shaka = PLAYERS.find((p) => p.name === 'Shaka DASH');
  const other = await openPlayer(context, shared.server.base, shaka, `${shared.server.base}/media/${id}/manifest.mpd`);
  await waitForPlayer(other, shaka, () => window.v.currentTime > 0.3, null, 30000);
  const first = await other.evaluate(() => window.v.currentTime);
  await waitForPlayer(other, shaka, (t) => window.v.currentTime > t + 2, first, 30000);
  assert.deepEqual(await other.evaluate(() => window.errors), [], 'Shaka on the low-latency manifest');
  await other.close();
  assert.equal((await status(shared.server.base, id)).state, 'recording', 'Shaka played it live');

  await recorder.getByRole('button', { name: /Stop/ }).click();
  await recorder.locator('#uploaded').waitFor({ timeout: 60000 });
  const ready = await waitForStatus(shared.server.base, id, (s) => s.state !== 'recording' && s.state !== 'processing');
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  assert.equal(ready.video, 'transcode');
  // The viewer who stayed: the manifest turned static under dash.js (the
  // number scheme became the exact timeline) and it plays to the end.
  await waitForPlaybackEnd(watcher, 30000);
  await context.close();
});
