// The player matrix: every web player segcast promises plays one recording
// while it is recorded and once it is ready, HLS and DASH, each loaded from
// npm the way a site would embed it (not through segcast's own pages).
// VLC and ffmpeg play the same playlists in the Rust tests (tests/live.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PLAYERS, openPlayer, waitForPlayer } from './players.js';
import {
  recordFor,
  sharedServerAndBrowser,
  startRecording,
  status,
  waitForStatus,
} from './harness.js';

const shared = sharedServerAndBrowser();

const urls = (id) => ({ hls: `${shared.server.base}/media/${id}/index.m3u8`, dash: `${shared.server.base}/media/${id}/manifest.mpd` });

/** Live: the player starts and then moves forward by 2 s of media. */
async function playsLive(context, player, id) {
  const page = await openPlayer(context, shared.server.base, player, urls(id)[player.kind]);
  await waitForPlayer(page, player, () => window.v.currentTime > 0.3, null, 40000);
  const first = await page.evaluate(() => window.v.currentTime);
  await waitForPlayer(page, player, (t) => window.v.currentTime > t + 2, first, 30000);
  assert.deepEqual(await page.evaluate(() => window.errors), [], player.name);
  await page.close();
}

/** Finished: the whole duration, and playback from near the end to it. */
async function playsFinished(context, player, id, durationS) {
  const page = await openPlayer(context, shared.server.base, player, urls(id)[player.kind]);
  await waitForPlayer(page, player, () => window.v.duration > 1 && window.v.readyState >= 1, null, 30000);
  const duration = await page.evaluate(() => window.v.duration);
  assert.ok(Math.abs(duration - durationS) < 0.5, `${player.name}: duration ${duration} vs ${durationS}`);
  await page.evaluate(() => {
    window.v.currentTime = window.v.duration - 2;
    return window.v.play().catch(() => {});
  });
  await waitForPlayer(page, player, () => window.v.ended || window.v.duration - window.v.currentTime < 0.3, null, 30000);
  assert.deepEqual(await page.evaluate(() => window.errors), [], player.name);
  await page.close();
}

test('every web player plays a recording live and once ready, HLS and DASH', async () => {
  const context = await shared.browser.newContext();
  const recorder = await context.newPage();
  const { id, startedAt } = await startRecording(recorder, shared.server.base, 'E2E player matrix');
  // Three at a time, so six decoders do not starve the recorder on 2 cores.
  for (const batch of [PLAYERS.slice(0, 3), PLAYERS.slice(3)]) {
    await Promise.all(batch.map((player) => playsLive(context, player, id)));
    assert.equal((await status(shared.server.base, id)).state, 'recording', 'played while live');
  }
  await recordFor(recorder, startedAt, 6000);
  await recorder.getByRole('button', { name: /Stop/ }).click();
  await recorder.locator('#uploaded').waitFor({ timeout: 60000 });
  const ready = await waitForStatus(shared.server.base, id, (s) => s.state !== 'recording' && s.state !== 'processing');
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  for (const batch of [PLAYERS.slice(0, 3), PLAYERS.slice(3)]) {
    await Promise.all(batch.map((player) => playsFinished(context, player, id, ready.duration_s)));
  }
  await context.close();
});
