// The player matrix: every web player segcast promises plays one recording
// while it is recorded and once it is ready, HLS and DASH, each loaded from
// npm the way a site would embed it (not through segcast's own pages).
// VLC and ffmpeg play the same playlists in the Rust tests (tests/live.rs).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchBrowser, recordFor, startRecording, startServer, status, waitForStatus } from './harness.js';

const NODE_MODULES = join(dirname(fileURLToPath(import.meta.url)), '../../node_modules');
const SCRIPTS = {
  hls: join(NODE_MODULES, 'hls.js/dist/hls.min.js'),
  dash: join(NODE_MODULES, 'dashjs/dist/modern/umd/dash.all.min.js'),
  shaka: join(NODE_MODULES, 'shaka-player/dist/shaka-player.compiled.js'),
  videojs: join(NODE_MODULES, 'video.js/dist/video.min.js'),
};

/** How each player starts on `url`, in the page; each leaves the element it
 * plays into in `window.v` and its errors in `window.errors`. */
const PLAYERS = [
  {
    name: 'hls.js low-latency',
    script: 'hls',
    kind: 'hls',
    start: (url) => {
      const hls = new Hls({ lowLatencyMode: true });
      hls.on(Hls.Events.ERROR, (_, d) => d.fatal && window.errors.push(`${d.type} ${d.details}`));
      hls.loadSource(url);
      hls.attachMedia(window.v);
    },
  },
  {
    name: 'hls.js default',
    script: 'hls',
    kind: 'hls',
    start: (url) => {
      const hls = new Hls({ lowLatencyMode: false });
      hls.on(Hls.Events.ERROR, (_, d) => d.fatal && window.errors.push(`${d.type} ${d.details}`));
      hls.loadSource(url);
      hls.attachMedia(window.v);
    },
  },
  { name: 'Shaka HLS', script: 'shaka', kind: 'hls', start: startShaka },
  { name: 'Shaka DASH', script: 'shaka', kind: 'dash', start: startShaka },
  {
    name: 'dash.js',
    script: 'dash',
    kind: 'dash',
    start: (url) => {
      const player = dashjs.MediaPlayer().create();
      player.on('error', (e) => window.errors.push(`dash.js ${JSON.stringify(e.error ?? e)}`));
      player.initialize(window.v, url, true);
    },
  },
  {
    name: 'video.js',
    script: 'videojs',
    kind: 'hls',
    start: (url) => {
      const player = videojs(window.v, { html5: { vhs: { overrideNative: true } }, muted: true, autoplay: true });
      player.on('error', () => window.errors.push(`video.js ${player.error()?.message}`));
      player.src({ src: url, type: 'application/x-mpegURL' });
      window.v = document.querySelector('video');
      player.play()?.catch(() => {});
    },
  },
];

function startShaka(url) {
  shaka.polyfill.installAll();
  const player = new shaka.Player();
  player.addEventListener('error', (e) => window.errors.push(`Shaka ${e.detail?.code} ${e.detail?.message ?? ''}`));
  player
    .attach(window.v)
    .then(() => player.load(url))
    .then(() => window.v.play())
    .catch((e) => window.errors.push(`Shaka ${e.code ?? ''} ${e.message ?? e}`));
}

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

/** A page on the server's origin (so media requests are same-origin, as
 * on a site that embeds a player) with the player's npm build loaded. */
async function openPlayer(context, player, url) {
  const page = await context.newPage();
  const pageUrl = `${server.base}/__player-matrix/${encodeURIComponent(player.name)}`;
  await page.route(pageUrl, (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><video id="v" muted autoplay playsinline></video>' }),
  );
  await page.goto(pageUrl);
  await page.addScriptTag({ path: SCRIPTS[player.script] });
  await page.evaluate(() => {
    window.v = document.getElementById('v');
    window.errors = [];
  });
  await page.evaluate(`(${player.start.toString()})(${JSON.stringify(url)})`);
  return page;
}

/** Waits for `predicate(video)` in the page; a timeout fails with what the
 * player and its element were doing. */
async function waitForPlayer(page, player, predicate, arg, timeout) {
  try {
    await page.waitForFunction(predicate, arg, { timeout });
  } catch (err) {
    const state = await page
      .evaluate(() => JSON.stringify({ t: window.v.currentTime, d: window.v.duration, paused: window.v.paused, errors: window.errors }))
      .catch((e) => e.message);
    throw new Error(`${player.name}: ${err.message.split('\n')[0]}; ${state}`);
  }
}

const urls = (id) => ({ hls: `${server.base}/media/${id}/index.m3u8`, dash: `${server.base}/media/${id}/manifest.mpd` });

/** Live: the player starts and then moves forward by 2 s of media. */
async function playsLive(context, player, id) {
  const page = await openPlayer(context, player, urls(id)[player.kind]);
  await waitForPlayer(page, player, () => window.v.currentTime > 0.3, null, 40000);
  const first = await page.evaluate(() => window.v.currentTime);
  await waitForPlayer(page, player, (t) => window.v.currentTime > t + 2, first, 30000);
  assert.deepEqual(await page.evaluate(() => window.errors), [], player.name);
  await page.close();
}

/** Finished: the whole duration, and playback from near the end to it. */
async function playsFinished(context, player, id, durationS) {
  const page = await openPlayer(context, player, urls(id)[player.kind]);
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
  const context = await browser.newContext();
  const recorder = await context.newPage();
  const { id, startedAt } = await startRecording(recorder, server.base, 'E2E player matrix');
  // Three at a time, so six decoders do not starve the recorder on 2 cores.
  for (const batch of [PLAYERS.slice(0, 3), PLAYERS.slice(3)]) {
    await Promise.all(batch.map((player) => playsLive(context, player, id)));
    assert.equal((await status(server.base, id)).state, 'recording', 'played while live');
  }
  await recordFor(recorder, startedAt, 6000);
  await recorder.getByRole('button', { name: /Stop/ }).click();
  await recorder.locator('#uploaded').waitFor({ timeout: 60000 });
  const ready = await waitForStatus(server.base, id, (s) => s.state !== 'recording' && s.state !== 'processing');
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  for (const batch of [PLAYERS.slice(0, 3), PLAYERS.slice(3)]) {
    await Promise.all(batch.map((player) => playsFinished(context, player, id, ready.duration_s)));
  }
  await context.close();
});
