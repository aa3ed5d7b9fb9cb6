// DASH in dash.js: the watch page plays a recording's manifest while it is
// recorded and once it is ready, from the same files as HLS.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, recordFor, startRecording, startServer, status, waitForPlaybackEnd, waitForStatus } from './harness.js';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('dash.js plays the manifest live and once ready', async () => {
  const context = await browser.newContext();
  const recorder = await context.newPage();
  const { id, startedAt } = await startRecording(recorder, server.base, 'E2E DASH');

  const watcher = await context.newPage();
  await watcher.goto(`${server.base}/watch/${id}?format=dash`);
  // While it records: dash.js plays and moves forward.
  await watcher.waitForFunction(() => window.segcastDash && document.getElementById('video').currentTime > 1, null, { timeout: 40000 });
  const first = await watcher.evaluate(() => document.getElementById('video').currentTime);
  await watcher.waitForFunction((t) => document.getElementById('video').currentTime > t + 1, first, { timeout: 20000 });
  assert.equal((await status(server.base, id)).state, 'recording', 'played while live');
  assert.ok(await watcher.evaluate(() => window.segcastDash.isDynamic()), 'a dynamic manifest');

  await recordFor(recorder, startedAt, 8000);
  await recorder.getByRole('button', { name: /Stop/ }).click();
  await recorder.locator('#uploaded').waitFor({ timeout: 60000 });
  const ready = await waitForStatus(server.base, id, (s) => s.state !== 'recording' && s.state !== 'processing');
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
