// E2E harness: a real segcast (the cargo-built binary, real ffmpeg) on a
// loopback port with a fresh data directory, and Debian's Chromium driven by
// playwright-core with a fake camera and microphone.
import { spawn } from 'node:child_process';
import { after, before } from 'node:test';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const PLAYER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const REPO = resolve(PLAYER_DIR, '..');
export const SCREENSHOTS = join(PLAYER_DIR, 'test-results');

export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  // As root in a container, and with no network beyond loopback.
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Starts segcast; resolves once it printed the address it listens on. */
export async function startServer() {
  const data = mkdtempSync(join(tmpdir(), 'segcast-e2e-'));
  const bin = process.env.SEGCAST_BIN ?? join(REPO, 'target/debug/segcast');
  // Started from an empty directory, with no --player-dir: the pages and
  // players are the ones inside the binary, as for a user's copy of it.
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data', data], {
    cwd: data,
    env: { ...process.env, NO_COLOR: '1', SEGCAST_LOG: process.env.SEGCAST_LOG ?? 'info,ffmpeg=warn' },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  const base = await new Promise((resolveBase, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`segcast did not start:\n${log}`)), 30000);
    child.on('exit', (code) => reject(new Error(`segcast exited (${code}):\n${log}`)));
    child.stderr.on('data', (data) => {
      log += data;
      if (process.env.E2E_SERVER_LOG) process.stderr.write(data);
      const match = /serving addr=(\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolveBase(`http://${match[1]}`);
      }
    });
  });
  child.stderr.resume();
  return {
    base,
    data,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      rmSync(data, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

/** GET a recording's status from the API. */
export async function status(base, id) {
  const response = await fetch(`${base}/api/recordings/${id}`);
  if (!response.ok) throw new Error(`status ${response.status}`);
  return response.json();
}

/** Polls the API until `done(status)`; fails with the last status. */
export async function waitForStatus(base, id, done, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status(base, id);
    if (done(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out; last status ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts a recording on the record page; returns its id and start time. */
export async function startRecording(page, base, title) {
  await page.goto(`${base}/record`);
  const start = page.getByRole('button', { name: /Start/ });
  await start.waitFor();
  await page.waitForFunction(() => !document.getElementById('start').disabled);
  await page.fill('#title', title);
  await start.click();
  await page.waitForFunction(() => document.body.dataset.recordingId);
  return page.evaluate(() => ({
    id: document.body.dataset.recordingId,
    startedAt: Number(document.body.dataset.recordingStartedAt),
  }));
}

/** Waits until the page's recording clock reaches `ms` since its start:
 * recording for a given time is the scenario itself, not a sync sleep. */
export async function recordFor(page, startedAt, ms) {
  await page.waitForFunction(([t0, wanted]) => Date.now() - t0 >= wanted, [startedAt, ms], { timeout: ms + 30000 });
}

export async function uploadCounters(page) {
  return page.evaluate(() => ({
    acked: Number(document.getElementById('acked').textContent),
    pending: Number(document.getElementById('pending').textContent),
  }));
}

/** What the page's <video> is doing: the message a timed-out wait fails with,
 * so a stall says where it stalled (position, buffered ranges, errors). */
export async function videoState(page) {
  return page.evaluate(() => {
    const v = document.getElementById('video');
    const ranges = (r) => Array.from({ length: r.length }, (_, i) => `${r.start(i).toFixed(2)}-${r.end(i).toFixed(2)}`).join(',');
    return JSON.stringify({
      currentTime: v.currentTime, duration: v.duration, paused: v.paused, ended: v.ended,
      readyState: v.readyState, networkState: v.networkState, error: v.error?.message ?? null,
      buffered: ranges(v.buffered), played: ranges(v.played), errors: window.segcastPlayerErrors ?? [],
    });
  });
}

/** `page.waitForFunction` over the video element that, on timeout, fails with
 * the video's state instead of a bare "Timeout exceeded". */
export async function waitForVideo(page, predicate, arg, timeout) {
  try {
    await page.waitForFunction(predicate, arg, { timeout });
  } catch (err) {
    throw new Error(`${err.message}\nvideo: ${await videoState(page).catch((e) => e.message)}`);
  }
}

/** Waits until the watch page's player says playback ended (the element's
 * `ended`, or dash.js's PLAYBACK_ENDED when its own end-of-period timer beat
 * the element to it), then checks that it ended at the end and not short of it. */
export async function waitForPlaybackEnd(page, timeout) {
  await waitForVideo(page, () => window.segcastPlaybackEnded === true, null, timeout);
  const state = JSON.parse(await videoState(page));
  if (!(state.duration - state.currentTime < 0.05)) {
    throw new Error(`playback ended ${state.duration - state.currentTime} s before the end: ${JSON.stringify(state)}`);
  }
}

/** End of the media the live playlist lists, in seconds: its segments plus
 * the parts of the segment still being filled. */
export async function listedEndS(base, id) {
  const text = await (await fetch(`${base}/media/${id}/media.m3u8`)).text();
  let closed = 0;
  let open = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXTINF:')) {
      closed += parseFloat(line.slice(8));
      open = 0;
    } else if (line.startsWith('#EXT-X-PART:')) {
      open += parseFloat(/DURATION=([\d.]+)/.exec(line)[1]);
    }
  }
  return closed + open;
}

/** Makes the context's record page record VP8 + Opus, as on Firefox: the
 * server encodes the video (on a fixed keyframe grid) instead of copying. */
export async function recordVp8(context) {
  await context.addInitScript(() => {
    const supported = MediaRecorder.isTypeSupported.bind(MediaRecorder);
    MediaRecorder.isTypeSupported = (type) => !/h264|avc1|mp4/i.test(type) && supported(type);
  });
}

/** One segcast and one browser (Chromium unless `launch` says otherwise)
 * shared by a test file's tests: started before them, stopped after. */
export function sharedServerAndBrowser(launch = launchBrowser) {
  const shared = {};
  before(async () => {
    shared.server = await startServer();
    shared.browser = await launch();
  });
  after(async () => {
    await shared.browser?.close();
    await shared.server?.stop();
  });
  return shared;
}
