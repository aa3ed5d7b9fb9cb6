// Delta updates in a real player (docs/http-contract.md, "Long live
// recordings"; RFC 8216bis §6.2.5.1): hls.js in low-latency mode, offered
// CAN-SKIP-UNTIL, asks its playlist reloads with _HLS_skip, gets EXT-X-SKIP
// playlists once the recording is longer than the skip boundary (12 s),
// and keeps playing live from them.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  recordFor,
  sharedServerAndBrowser,
  startRecording,
  status,
  waitForVideo,
} from './harness.js';

const shared = sharedServerAndBrowser();

test('hls.js reloads live playlists with _HLS_skip and plays from delta updates', async () => {
  const context = await shared.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const recorder = await context.newPage();
  const { id, startedAt } = await startRecording(recorder, shared.server.base, 'E2E delta updates');
  const watcher = await context.newPage();
  const reloads = [];
  const deltas = [];
  watcher.on('response', async (response) => {
    const url = new URL(response.url());
    if (!/\/(media|audio)\.m3u8$/.test(url.pathname)) return;
    reloads.push(url.search);
    if (url.searchParams.has('_HLS_skip') && response.status() === 200) {
      const text = await response.text().catch(() => '');
      const skip = /#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)/.exec(text);
      if (skip) deltas.push({ path: url.pathname, skipped: Number(skip[1]), bytes: text.length });
    }
  });
  await watcher.goto(`${shared.server.base}/watch/${id}`);
  await watcher.getByText('Live', { exact: true }).waitFor();
  await waitForVideo(watcher, () => document.getElementById('video').currentTime > 0.5, null, 30000);

  // Past the skip boundary (six 2 s target durations) with room to spare.
  await recordFor(recorder, startedAt, 24000);
  const playingAt = await watcher.evaluate(() => document.getElementById('video').currentTime);
  await recordFor(recorder, startedAt, 28000);
  const later = await watcher.evaluate(() => document.getElementById('video').currentTime);
  assert.equal((await status(shared.server.base, id)).state, 'recording', 'still live');
  assert.ok(later > playingAt + 2, `playback went on from delta updates: ${playingAt} → ${later}`);

  const skipping = reloads.filter((q) => /[?&]_HLS_skip=(YES|v2)/.test(q));
  const blocking = skipping.filter((q) => /_HLS_msn=\d+/.test(q));
  console.log(`playlist requests ${reloads.length}, with _HLS_skip ${skipping.length} (blocking ${blocking.length}), EXT-X-SKIP answers ${deltas.length}: ${JSON.stringify(deltas.slice(-2))}`);
  assert.ok(skipping.length >= 5, `hls.js asked for delta updates: ${reloads.slice(-5).join(' ')}`);
  assert.ok(blocking.length >= 5, 'combined with blocking reloads');
  assert.ok(deltas.some((d) => d.path.endsWith('/media.m3u8') && d.skipped >= 1), JSON.stringify(deltas));
  const latency = await watcher.evaluate(() => window.segcastHls?.latency);
  assert.ok(latency < 5, `still near the live edge: ${latency} s`);

  await recorder.getByRole('button', { name: /Stop/ }).click();
  await context.close();
});
