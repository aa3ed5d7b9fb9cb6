// A private, encrypted recording made on the record page in Chromium: the
// owner's "Share" button makes a link, and that link plays in hls.js
// (AES-128 segments and Low-Latency parts, each part decrypted on its own)
// while the recording goes on and once it is finished. Without the link,
// the watch page says the recording is private.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import {
  SCREENSHOTS,
  recordFor,
  sharedServerAndBrowser,
} from './harness.js';

const shared = sharedServerAndBrowser();

async function statusWith(base, id, token) {
  const response = await fetch(`${base}/api/recordings/${id}?token=${encodeURIComponent(token)}`);
  assert.equal(response.status, 200, `status with the share token: ${response.status}`);
  return response.json();
}

test('a share link of a private encrypted recording plays live and finished in hls.js', async () => {
  const context = await shared.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const recorder = await context.newPage();
  await recorder.goto(`${shared.server.base}/record`);
  await recorder.waitForFunction(() => !document.getElementById('start').disabled);
  await recorder.check('#private');
  await recorder.check('#encrypt');
  await recorder.fill('#title', 'private encrypted');
  await recorder.getByRole('button', { name: /Start/ }).click();
  await recorder.waitForFunction(() => document.body.dataset.recordingId);
  const { id, startedAt } = await recorder.evaluate(() => ({
    id: document.body.dataset.recordingId,
    startedAt: Number(document.body.dataset.recordingStartedAt),
  }));

  const anonymous = await fetch(`${shared.server.base}/api/recordings/${id}`);
  assert.equal(anonymous.status, 401);

  // The owner's Share button: a link with an expiry.
  await recorder.selectOption('#share-expiry', '3600');
  await recorder.getByRole('button', { name: 'Share', exact: true }).click();
  await recorder.locator('#share-result:not([hidden])').waitFor();
  const watchUrl = await recorder.locator('#share-link').getAttribute('href');
  const token = new URL(watchUrl, shared.server.base).searchParams.get('token');
  assert.ok(token, watchUrl);
  const expires = await recorder.locator('#share-expires').textContent();
  assert.match(expires, /until/);

  // Live: the viewer's hls.js plays encrypted parts near the live edge.
  const viewer = await context.newPage();
  const fatal = [];
  viewer.on('pageerror', (e) => fatal.push(String(e)));
  await viewer.goto(new URL(watchUrl, shared.server.base).href);
  await viewer.waitForFunction(() => window.segcastHls, null, { timeout: 30000 });
  await viewer.evaluate(() => {
    window.hlsErrors = [];
    window.segcastHls.on('hlsError', (_e, data) => window.hlsErrors.push(`${data.details}${data.fatal ? ' (fatal)' : ''}`));
  });
  await viewer.waitForFunction(() => document.getElementById('video').currentTime > 2, null, { timeout: 30000 });
  const live = await viewer.evaluate(() => ({
    parts: window.segcastHls.latestLevelDetails?.partList?.length ?? 0,
    encrypted: window.segcastHls.latestLevelDetails?.fragments.every((f) => f.encrypted),
    errors: window.hlsErrors,
  }));
  assert.ok(live.parts > 0, 'hls.js plays the live edge in parts');
  assert.equal(live.encrypted, true, 'every segment is under a key');
  assert.deepEqual(live.errors.filter((e) => e.includes('fatal') || e.includes('decrypt') || e.includes('KEY')), []);
  await viewer.screenshot({ path: join(SCREENSHOTS, 'private-live.png') });

  await recordFor(recorder, startedAt, 8000);
  await recorder.getByRole('button', { name: /Stop/ }).click();
  const deadline = Date.now() + 60000;
  let status;
  do {
    status = await statusWith(shared.server.base, id, token);
    if (status.state === 'ready') break;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < deadline);
  assert.equal(status.state, 'ready', JSON.stringify(status));
  assert.equal(status.encrypted, true);
  assert.equal(status.dash, null);

  // Finished: the same link plays to the end.
  const later = await context.newPage();
  await later.goto(new URL(watchUrl, shared.server.base).href);
  await later.getByText('Ready', { exact: true }).waitFor({ timeout: 20000 });
  await later.evaluate(() => document.getElementById('video').play());
  await later.waitForFunction(() => document.getElementById('video').currentTime > 4, null, { timeout: 30000 });
  const duration = await later.evaluate(() => document.getElementById('video').duration);
  assert.ok(Math.abs(duration - status.duration_s) < 0.5, `player ${duration} vs ${status.duration_s}`);

  // Without the token the watch page says it is private.
  const stranger = await context.newPage();
  await stranger.goto(`${shared.server.base}/watch/${id}`);
  await stranger.getByText('This recording is private', { exact: false }).waitFor({ timeout: 10000 });
  assert.deepEqual(fatal, []);
  await context.close();
});
