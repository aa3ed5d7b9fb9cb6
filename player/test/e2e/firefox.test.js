// The user promise in a second engine: record in Firefox ESR (VP8 + Opus,
// encoded to H.264 here), watch it near-live in another Firefox tab (hls.js
// on Firefox's MSE), comment on it, and replay it once ready; every promised
// web player plays it live and finished there too. Driven over WebDriver
// BiDi.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { launchFirefox } from './bidi.js';
import { PLAYERS, openPlayerInTab } from './players.js';
import {
  listedEndS,
  sharedServerAndBrowser,
  status,
  waitForStatus,
} from './harness.js';

const shared = sharedServerAndBrowser(launchFirefox);

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** What a player's element is doing, for a failed wait's message. */
const playerState = (tab, player) => () =>
  tab.evaluate(() => JSON.stringify({ t: window.v.currentTime, d: window.v.duration, paused: window.v.paused, errors: window.errors }))
    .then((state) => `${player.name}: ${state}`);

/** Every promised web player on the recording in Firefox, three tabs at a
 * time: live, it starts and moves on by 2 s; finished, it has the whole
 * duration and plays from near the end to it. */
async function playerMatrix(id, durationS) {
  const url = { hls: `${shared.server.base}/media/${id}/index.m3u8`, dash: `${shared.server.base}/media/${id}/manifest.mpd` };
  for (const batch of [PLAYERS.slice(0, 3), PLAYERS.slice(3)]) {
    await Promise.all(batch.map(async (player) => {
      const tab = await shared.browser.session.newTab();
      await openPlayerInTab(tab, shared.server.base, player, url[player.kind]);
      const describe = playerState(tab, player);
      if (durationS === undefined) {
        await tab.waitFor(() => window.v.currentTime > 0.3, { timeout: 40000, describe });
        const first = await tab.evaluate(() => window.v.currentTime);
        await tab.waitFor((t) => window.v.currentTime > t + 2, { args: [first], timeout: 30000, describe });
      } else {
        await tab.waitFor(() => window.v.duration > 1 && window.v.readyState >= 1, { describe });
        const duration = await tab.evaluate(() => window.v.duration);
        assert.ok(Math.abs(duration - durationS) < 0.5, `${player.name} in Firefox: duration ${duration} vs ${durationS}`);
        await tab.evaluate(() => {
          window.v.currentTime = window.v.duration - 2;
          return window.v.play().then(() => true, () => false);
        });
        await tab.waitFor(() => window.v.ended || window.v.duration - window.v.currentTime < 0.3, { describe });
      }
      assert.deepEqual(await tab.evaluate(() => window.errors), [], `${player.name} in Firefox`);
      await tab.close();
    }));
  }
}

/** What the watch page's video is doing, for a failed wait's message. */
const videoState = (tab) => () =>
  tab.evaluate(() => {
    const v = document.getElementById('video');
    return { t: v.currentTime, d: v.duration, paused: v.paused, error: v.error?.message, errors: window.segcastPlayerErrors };
  }).then(JSON.stringify);

test('Firefox records, watches live, comments, replays, and every player plays the recording', async () => {
  const recorder = await shared.browser.session.newTab();
  await recorder.goto(`${shared.server.base}/record`);
  await recorder.waitFor(() => !document.getElementById('start').disabled);
  await recorder.evaluate(() => {
    document.getElementById('title').value = 'E2E Firefox';
    document.getElementById('start').click();
  });
  const { id, startedAt } = await recorder.waitFor(() =>
    document.body.dataset.recordingId
      ? { id: document.body.dataset.recordingId, startedAt: Number(document.body.dataset.recordingStartedAt) }
      : null,
  );
  const mime = await recorder.evaluate(() => document.body.dataset.recordingMime);
  assert.match(mime, /webm/i, `Firefox records WebM: ${mime}`);

  const watcher = await shared.browser.session.newTab();
  await watcher.goto(`${shared.server.base}/watch/${id}`);
  const state = videoState(watcher);
  await watcher.waitFor(() => document.getElementById('video').currentTime > 0.5, { timeout: 40000, describe: state });
  // Near-live: sampled as the Chromium test does, split at the playlist.
  const samples = [];
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    const [t, listed] = await Promise.all([
      watcher.evaluate(() => document.getElementById('video').currentTime),
      listedEndS(shared.server.base, id),
    ]);
    const elapsed = (Date.now() - startedAt) / 1000;
    samples.push([elapsed - t, elapsed - listed, listed - t]);
    await watcher.waitFor((after) => document.getElementById('video').currentTime > after, { args: [t], describe: state });
  }
  assert.equal((await status(shared.server.base, id)).state, 'recording', 'watched while live');
  const [total, lag, hold] = [0, 1, 2].map((i) => median(samples.map((x) => x[i])));
  console.log(`Firefox near-live: p50 ${total.toFixed(2)} s = camera → listed ${lag.toFixed(2)} s + listed → playing ${hold.toFixed(2)} s (${samples.length} samples)`);
  assert.ok(total < 5, `Firefox watches ${total.toFixed(2)} s behind the camera`);

  // Comments in Firefox: posted from the watch page's form while live,
  // shown on the record page through its socket, stored as posted with
  // the player's position.
  for (const tab of [watcher, recorder]) {
    await tab.waitFor(() => document.getElementById('comments')?.dataset.socket === 'open');
  }
  const text = 'Hello from Firefox';
  const at = await watcher.evaluate((t) => {
    document.querySelector('#comments input[name=author]').value = 'Fox';
    document.querySelector('#comments textarea[name=text]').value = t;
    document.querySelector('#comments .comment-form button[type=submit]').click();
    return document.getElementById('video').currentTime;
  }, text);
  await recorder.waitFor(
    (t) => [...document.querySelectorAll('#comments .comment-text')].some((n) => n.textContent === t),
    { args: [text], timeout: 10000 },
  );
  const stored = await (await fetch(`${shared.server.base}/api/recordings/${id}/comments`)).json();
  assert.deepEqual(stored.map((c) => [c.author, c.text]), [['Fox', text]]);
  assert.ok(Math.abs(stored[0].media_time_s - at) < 1, `stamped ${stored[0].media_time_s}, player at ${at}`);

  // The player matrix, live, on the same recording.
  await playerMatrix(id);
  assert.equal((await status(shared.server.base, id)).state, 'recording', 'players ran while live');

  await recorder.evaluate(() => document.getElementById('stop').click());
  await recorder.waitFor(() => document.getElementById('uploaded'), { timeout: 60000 });
  const ready = await waitForStatus(shared.server.base, id, (s) => s.state !== 'recording' && s.state !== 'processing');
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  assert.equal(ready.video, 'transcode', 'VP8 is encoded here');
  assert.deepEqual(ready.chunks.missing, []);

  // Ready: the whole duration, and it plays from a seek.
  await watcher.goto(`${shared.server.base}/watch/${id}`);
  await watcher.waitFor(() => document.getElementById('video').duration > 3, { describe: state });
  const duration = await watcher.evaluate(() => document.getElementById('video').duration);
  assert.ok(Math.abs(duration - ready.duration_s) < 1, `Firefox duration ${duration} vs ${ready.duration_s}`);
  await watcher.evaluate(() => {
    const v = document.getElementById('video');
    v.currentTime = 1;
    return v.play().then(() => true);
  });
  await watcher.waitFor(() => document.getElementById('video').currentTime > 2, { timeout: 15000, describe: state });

  // And every player once it is ready.
  await playerMatrix(id, ready.duration_s);
});
