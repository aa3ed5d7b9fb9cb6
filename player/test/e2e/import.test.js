// Import a file from the library page in Chromium, then watch it: the
// import door a person uses, against a real segcast with real ffmpeg. Both
// import paths (H.264 copied, VP9 transcoded) then play as DASH in dash.js.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SCREENSHOTS, launchBrowser, startServer, waitForPlaybackEnd, waitForStatus } from './harness.js';

let server;
let browser;
let file;
let vp9;

before(async () => {
  // A 4 s H.264/AAC MP4, made by ffmpeg as a phone would hand one over.
  file = join(mkdtempSync(join(tmpdir(), 'segcast-import-')), 'garden party.mp4');
  execFileSync('ffmpeg', [
    '-v', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=330:sample_rate=48000',
    '-t', '4', '-c:v', 'libx264', '-g', '30', '-c:a', 'aac', '-movflags', '+faststart', file,
  ]);
  // A 3 s VP9/Opus WebM: the transcoding import path.
  vp9 = join(mkdtempSync(join(tmpdir(), 'segcast-import-')), 'vp9 clip.webm');
  execFileSync('ffmpeg', [
    '-v', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=550:sample_rate=48000',
    '-t', '3', '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8',
    '-c:a', 'libopus', vp9,
  ]);
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a file imported from the library page plays on its watch page', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${server.base}/`);
  await page.locator('#import-file').setInputFiles(file);
  await page.getByText('processing below').waitFor({ timeout: 30000 });

  const card = page.locator('article', { hasText: 'garden party' });
  await card.waitFor({ timeout: 15000 });
  const id = await card.getAttribute('data-id');
  const ready = await waitForStatus(server.base, id, (s) => s.state !== 'processing');
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  assert.equal(ready.source, 'import');
  assert.ok(Math.abs(ready.duration_s - 4) < 0.1, `duration ${ready.duration_s}`);
  await page.locator(`[data-id="${id}"][data-state="ready"] img`).waitFor({ timeout: 15000 });
  await page.screenshot({ path: join(SCREENSHOTS, 'library-import-desktop.png') });

  await card.getByRole('link', { name: 'Watch', exact: true }).click();
  await page.getByText('Ready', { exact: true }).waitFor();
  await page.evaluate(() => document.getElementById('video').play());
  await page.waitForFunction(() => document.getElementById('video').currentTime > 1.5, null, { timeout: 20000 });
  const duration = await page.evaluate(() => document.getElementById('video').duration);
  assert.ok(Math.abs(duration - 4) < 0.2, `player duration ${duration}`);
  await context.close();
});

test('imports play as DASH in dash.js, copied (H.264) and transcoded (VP9)', async () => {
  const body = readFileSync(vp9);
  const created = await fetch(`${server.base}/api/imports?name=${encodeURIComponent('vp9 clip.webm')}`, {
    method: 'POST', body, headers: { 'content-type': 'video/webm' },
  });
  assert.equal(created.status, 201, await created.clone().text());
  const vp9Id = (await created.json()).id;
  const list = await (await fetch(`${server.base}/api/recordings`)).json();
  const h264Id = list.find((r) => r.title === 'garden party')?.id;
  assert.ok(h264Id, 'the first test imported the H.264 file');

  const context = await browser.newContext();
  const page = await context.newPage();
  for (const [id, expected] of [[h264Id, 4], [vp9Id, 3]]) {
    const ready = await waitForStatus(server.base, id, (s) => s.state !== 'processing');
    assert.equal(ready.state, 'ready', JSON.stringify(ready));
    assert.equal(ready.dash, `/media/${id}/manifest.mpd`);
    await page.goto(`${server.base}/watch/${id}?format=dash`);
    await page.waitForFunction(() => window.segcastDash && document.getElementById('video').duration > 1, null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => window.segcastDash.isDynamic()), false, 'a static manifest');
    const duration = await page.evaluate(() => document.getElementById('video').duration);
    assert.ok(Math.abs(duration - expected) < 0.2, `dash.js duration ${duration} of ${expected} s`);
    // From the start to the end: every segment of both adaptation sets.
    await page.evaluate(() => document.getElementById('video').play());
    await waitForPlaybackEnd(page, 30000);
    const frames = await page.evaluate(() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames);
    assert.ok(frames >= expected * 25, `frames decoded: ${frames}`);
  }
  await context.close();
});
