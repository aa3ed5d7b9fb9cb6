// Import a file from the library page in Chromium, then watch it: the
// import door a person uses, against a real segcast with real ffmpeg.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SCREENSHOTS, launchBrowser, startServer, waitForStatus } from './harness.js';

let server;
let browser;
let file;

before(async () => {
  // A 4 s H.264/AAC MP4, made by ffmpeg as a phone would hand one over.
  file = join(mkdtempSync(join(tmpdir(), 'segcast-import-')), 'garden party.mp4');
  execFileSync('ffmpeg', [
    '-v', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=330:sample_rate=48000',
    '-t', '4', '-c:v', 'libx264', '-g', '30', '-c:a', 'aac', '-movflags', '+faststart', file,
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
