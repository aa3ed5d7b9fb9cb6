// Viewers' comments, live: two watch pages and the record page on one
// recording, against a real segcast (docs/http-contract.md, "Comments").
// A comment posted by one viewer reaches the other viewer and the person
// recording as it is posted (the target: within a second), its timestamp
// seeks the player, and markup in it is shown as text and never run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import {
  SCREENSHOTS,
  sharedServerAndBrowser,
  startRecording,
  waitForStatus,
} from './harness.js';

const shared = sharedServerAndBrowser();

/** Issue 12's target is 1 s from the click to the other pages, measured at
 * 19–70 ms on a quiet machine; in CI the pages share two cores with ffmpeg
 * encoding the recording, so the test holds them to a ceiling of seconds
 * (a comment that is not pushed arrives only with a reconnect's history, or
 * never) and prints the figures. E2E_COMMENT_LATENCY_MS=1000 holds a quiet
 * machine to the target itself. */
const MAX_LATENCY_MS = Number(process.env.E2E_COMMENT_LATENCY_MS ?? 5000);
/** The server's segment target (--segment-target-ms). */
const SEGMENT_S = 2;
const XSS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';

/** From now on, `page` notes (epoch ms) when a comment with this exact
 * text is first in its comment list and visible. */
async function noteArrival(page, text) {
  await page.evaluate((wanted) => {
    window.commentSeenAt ??= {};
    const list = document.querySelector('#comments .comment-list');
    const check = () => {
      if (wanted in window.commentSeenAt) return;
      for (const node of list.querySelectorAll('.comment-text')) {
        if (node.textContent === wanted && node.checkVisibility()) window.commentSeenAt[wanted] = Date.now();
      }
    };
    new MutationObserver(check).observe(list, { childList: true, subtree: true });
    check();
  }, text);
}

async function arrivedAt(page, text) {
  await page.waitForFunction((wanted) => window.commentSeenAt?.[wanted] != null, text, { timeout: 10000 });
  return page.evaluate((wanted) => window.commentSeenAt[wanted], text);
}

/** Posts from a watch page's form; returns the epoch ms of the click. */
async function post(page, author, text) {
  await page.fill('#comments input[name=author]', author);
  await page.fill('#comments textarea[name=text]', text);
  await page.evaluate(() => {
    const button = document.querySelector('#comments .comment-form button[type=submit]');
    button.addEventListener('click', () => (window.postClickedAt = Date.now()), { capture: true, once: true });
  });
  await page.click('#comments .comment-form button[type=submit]');
  return page.evaluate(() => window.postClickedAt);
}

/** Clicks the timestamp of a comment at `t` seconds; returns the
 * positions the player was asked to seek to (hls.js may add its own
 * nudges) and where it is at the `seeked` that follows the seek to `t`. */
async function seekByTimestamp(page, commentId, t) {
  await page.evaluate((target) => {
    const video = document.getElementById('video');
    window.seek = { requested: [], landed: null };
    let asked = false;
    video.addEventListener('seeking', () => {
      window.seek.requested.push(video.currentTime);
      if (Math.abs(video.currentTime - target) < 0.001) asked = true;
    });
    video.addEventListener('seeked', () => {
      if (asked) window.seek.landed ??= video.currentTime;
    });
  }, t);
  await page.locator(`#comments li[data-comment-id="${commentId}"] button.comment-time`).click();
  await page.waitForFunction(() => window.seek.landed != null, null, { timeout: 15000 });
  return page.evaluate(() => window.seek);
}

const currentTime = (page) => page.evaluate(() => document.getElementById('video').currentTime);

async function comments(id) {
  const response = await fetch(`${shared.server.base}/api/recordings/${id}/comments`);
  assert.equal(response.status, 200);
  return response.json();
}

test('a comment reaches the other viewer and the recorder as it is posted, seeks, and stays text', async () => {
  const context = await shared.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const recorder = await context.newPage();
  const { id } = await startRecording(recorder, shared.server.base, 'E2E comments');
  const [alice, bob] = [await context.newPage(), await context.newPage()];
  for (const viewer of [alice, bob]) await viewer.goto(`${shared.server.base}/watch/${id}`);
  for (const page of [recorder, alice, bob]) {
    await page.locator('#comments[data-socket="open"]').waitFor({ timeout: 10000 });
  }
  // Both play the live recording, so the comment has a media time.
  for (const viewer of [alice, bob]) {
    await viewer.waitForFunction(() => document.getElementById('video').currentTime > 1, null, { timeout: 30000 });
  }

  // 1. Alice posts; Bob and the recorder see it soon after the click.
  const text = 'Hello from Alice\nsecond line';
  for (const page of [bob, recorder]) await noteArrival(page, text);
  const before = await currentTime(alice);
  const clickedAt = await post(alice, 'Alice', text);
  const after = await currentTime(alice);
  const latencies = {};
  for (const [name, page] of [['bob', bob], ['recorder', recorder]]) {
    latencies[name] = (await arrivedAt(page, text)) - clickedAt;
  }
  console.log(`comment latency, click → visible: other viewer ${latencies.bob} ms, record page ${latencies.recorder} ms`);
  for (const [name, ms] of Object.entries(latencies)) {
    assert.ok(ms >= 0 && ms <= MAX_LATENCY_MS, `${name} saw the comment after ${ms} ms`);
  }
  const [stored] = await comments(id);
  assert.equal(stored.text, text);
  assert.equal(stored.author, 'Alice');
  assert.ok(stored.media_time_s >= before - 0.01 && stored.media_time_s <= after + 0.01, `stamped ${stored.media_time_s}, player was at ${before}..${after}`);
  // Alice sees her own comment once (from the POST and the socket).
  await alice.locator(`#comments li[data-comment-id="${stored.id}"]`).waitFor();
  assert.equal(await alice.locator('#comments li.comment').count(), 1);
  // The record page lists it read-only: no form, no seek buttons.
  assert.equal(await recorder.locator('#comments form').count(), 0);
  assert.equal(await recorder.locator('#comments button.comment-time').count(), 0);

  // 2. Bob clicks its timestamp: his player is asked to go exactly there
  // (at `seeking`) and lands there. Live, hls.js may land on the next
  // decodable frame of that segment; once the recording is ready the seek
  // is checked to the half second (step 4).
  const liveSeek = await seekByTimestamp(bob, stored.id, stored.media_time_s);
  assert.ok(Math.abs(liveSeek.landed - stored.media_time_s) < SEGMENT_S, `live: landed at ${liveSeek.landed}, comment at ${stored.media_time_s}`);

  // 3. Markup is text: shown literally everywhere, nothing runs.
  for (const page of [bob, recorder]) await noteArrival(page, XSS);
  await post(alice, '<b>Mallory</b>', XSS);
  for (const page of [alice, bob, recorder]) {
    if (page !== alice) await arrivedAt(page, XSS);
    else await page.locator('#comments .comment-text', { hasText: 'onerror' }).waitFor();
    const shown = await page.evaluate(() => {
      const items = [...document.querySelectorAll('#comments li.comment')];
      const last = items.at(-1);
      return {
        text: last.querySelector('.comment-text').textContent,
        author: last.querySelector('.comment-author').textContent,
        elements: document.querySelectorAll('#comments img, #comments script, #comments b').length,
        pwned: window.pwned,
      };
    });
    assert.deepEqual(shown, { text: XSS, author: '<b>Mallory</b>', elements: 0, pwned: undefined });
  }
  await bob.screenshot({ path: join(SCREENSHOTS, 'watch-comments-desktop.png') });
  await recorder.screenshot({ path: join(SCREENSHOTS, 'record-comments-desktop.png'), fullPage: true });

  // 4. The name is remembered; the comments stay once the recording is over.
  await recorder.getByRole('button', { name: /Stop/ }).click();
  // ffmpeg may trail the camera by a lot on a busy 2-core machine: be patient.
  const ready = await waitForStatus(shared.server.base, id, (s) => s.state === 'ready' || s.state === 'failed', 180000);
  assert.equal(ready.state, 'ready', JSON.stringify(ready));
  await alice.reload();
  assert.equal(await alice.inputValue('#comments input[name=author]'), '<b>Mallory</b>');
  await alice.locator('#comments li.comment').nth(1).waitFor();
  assert.equal(await alice.locator('#comments li.comment').count(), 2);
  assert.equal(await alice.evaluate(() => window.pwned), undefined);
  await alice.waitForFunction((t) => document.getElementById('video').duration > t + 1, stored.media_time_s, { timeout: 30000 });
  // Seek to whichever comment is further from where the player is.
  const position = await currentTime(alice);
  const target = (await comments(id)).reduce((a, b) =>
    Math.abs(b.media_time_s - position) > Math.abs(a.media_time_s - position) ? b : a,
  );
  assert.ok(Math.abs(target.media_time_s - position) > 0.9, `player at ${position}, comments at ${target.media_time_s}`);
  const readySeek = await seekByTimestamp(alice, target.id, target.media_time_s);
  assert.ok(Math.abs(readySeek.landed - target.media_time_s) < 0.5, `ready: landed at ${readySeek.landed}, comment at ${target.media_time_s}`);

  const phone = await shared.browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const small = await phone.newPage();
  await small.goto(`${shared.server.base}/watch/${id}`);
  await small.locator('#comments li.comment').nth(1).waitFor();
  await small.screenshot({ path: join(SCREENSHOTS, 'watch-comments-phone.png'), fullPage: true });
  await phone.close();
  await context.close();
});
