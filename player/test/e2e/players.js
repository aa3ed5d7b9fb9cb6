// The web players segcast promises, each started from its npm build the way
// a site would embed it: shared by the player matrix and the LL-DASH test.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';


const NODE_MODULES = join(dirname(fileURLToPath(import.meta.url)), '../../node_modules');
const SCRIPTS = {
  hls: join(NODE_MODULES, 'hls.js/dist/hls.min.js'),
  dash: join(NODE_MODULES, 'dashjs/dist/modern/umd/dash.all.min.js'),
  shaka: join(NODE_MODULES, 'shaka-player/dist/shaka-player.compiled.js'),
  videojs: join(NODE_MODULES, 'video.js/dist/video.min.js'),
};

/** How each player starts on `url`, in the page; each leaves the element it
 * plays into in `window.v` and its errors in `window.errors`. */
export const PLAYERS = [
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

/** A page on the server's origin (so media requests are same-origin, as
 * on a site that embeds a player) with the player's npm build loaded. */
export async function openPlayer(context, base, player, url) {
  const page = await context.newPage();
  const pageUrl = `${base}/__player-matrix/${encodeURIComponent(player.name)}`;
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
export async function waitForPlayer(page, player, predicate, arg, timeout) {
  try {
    await page.waitForFunction(predicate, arg, { timeout });
  } catch (err) {
    const state = await page
      .evaluate(() => JSON.stringify({ t: window.v.currentTime, d: window.v.duration, paused: window.v.paused, errors: window.errors }))
      .catch((e) => e.message);
    throw new Error(`${player.name}: ${err.message.split('\n')[0]}; ${state}`);
  }
}


/** [`openPlayer`] for a WebDriver BiDi tab (bidi.js): the server's own
 * library page, emptied, is the same-origin page; the player's npm build
 * runs there as a classic script, as a `<script src>` would run it. */
export async function openPlayerInTab(tab, base, player, url) {
  await tab.goto(`${base}/`);
  await tab.evaluate(() => {
    document.body.innerHTML = '<video id="v" muted autoplay playsinline></video>';
    window.v = document.getElementById('v');
    window.errors = [];
  });
  await tab.session.send('script.evaluate', {
    expression: readFileSync(SCRIPTS[player.script], 'utf8'),
    awaitPromise: false,
    target: { context: tab.context },
  });
  await tab.session.send('script.evaluate', {
    expression: `(${player.start.toString()})(${JSON.stringify(url)})`,
    awaitPromise: false,
    target: { context: tab.context },
  });
}
