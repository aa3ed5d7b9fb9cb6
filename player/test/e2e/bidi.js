// A small WebDriver BiDi client (W3C WebDriver BiDi: session, browsingContext,
// script) for Firefox ESR, which speaks it itself (`--remote-debugging-port`):
// Playwright's own BiDi driver needs commands Firefox ESR 153 lacks
// (`emulation.setMediaFeaturesOverride`), and geckodriver is not packaged.
// Only what the E2E tests need: tabs, navigation, running a function in a
// page and waiting for one to hold.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import WebSocket from 'ws';

/** Fake camera and microphone, no permission prompt, autoplay allowed
 * (the prefs Firefox's own tests use), and nothing that calls home. */
const PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  'browser.shell.checkDefaultBrowser': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'app.update.disabledForTesting': true,
  'browser.startup.homepage_override.mstone': 'ignore',
  'network.captive-portal-service.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
};

const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';

/** Starts headless Firefox on a fresh profile and opens a BiDi session. */
export async function launchFirefox() {
  const profile = mkdtempSync(join(tmpdir(), 'segcast-firefox-'));
  const prefs = Object.entries(PREFS).map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});`);
  writeFileSync(join(profile, 'user.js'), `${prefs.join('\n')}\n`);
  const child = spawn(FIREFOX, ['--headless', '--no-remote', '--profile', profile, '--remote-debugging-port=0'], {
    env: { ...process.env, HOME: profile, MOZ_CRASHREPORTER_DISABLE: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = await new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`Firefox did not start:\n${log}`)), 60000);
    child.on('exit', (code) => reject(new Error(`Firefox exited (${code}):\n${log}`)));
    child.stderr.on('data', (data) => {
      log += data;
      const found = /WebDriver BiDi listening on (ws:\/\/\S+)/.exec(log);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
  });
  const session = new Session(new WebSocket(`${url}/session`));
  await session.opened;
  await session.send('session.new', { capabilities: {} });
  return {
    session,
    async close() {
      await session.send('browser.close', {}).catch(() => {});
      session.socket.close();
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

class Session {
  constructor(socket) {
    this.socket = socket;
    this.next = 1;
    this.pending = new Map();
    this.opened = new Promise((resolve, reject) => {
      socket.on('open', resolve);
      socket.on('error', reject);
    });
    socket.on('message', (data) => {
      const message = JSON.parse(data);
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.type === 'error') waiter.reject(new Error(`${message.error}: ${message.message}`));
      else waiter.resolve(message.result);
    });
  }

  send(method, params) {
    const id = this.next++;
    this.socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  /** A new tab, as a {@link Tab}. */
  async newTab() {
    const { context } = await this.send('browsingContext.create', { type: 'tab' });
    return new Tab(this, context);
  }
}

class Tab {
  constructor(session, context) {
    this.session = session;
    this.context = context;
  }

  goto(url) {
    return this.session.send('browsingContext.navigate', { context: this.context, url, wait: 'complete' });
  }

  close() {
    return this.session.send('browsingContext.close', { context: this.context });
  }

  /** Runs `fn(...args)` in the page (awaiting a promise it returns) and
   * gives back its JSON-serialisable result. */
  async evaluate(fn, ...args) {
    const result = await this.session.send('script.callFunction', {
      // Arguments and the result cross as JSON text: plain data only.
      functionDeclaration: `async (...a) => JSON.stringify(await (${fn.toString()})(...a.map((x) => JSON.parse(x))))`,
      arguments: args.map((value) => ({ type: 'string', value: JSON.stringify(value) })),
      awaitPromise: true,
      target: { context: this.context },
    });
    if (result.type === 'exception') throw new Error(`in the page: ${result.exceptionDetails.text}`);
    return result.result.value === undefined ? undefined : JSON.parse(result.result.value);
  }

  /** Polls `fn(...args)` in the page every 100 ms until it returns truthy;
   * on timeout fails with `describe()`'s account of the page, if given. */
  async waitFor(fn, { timeout = 30000, args = [], describe } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const value = await this.evaluate(fn, ...args).catch(() => undefined);
      if (value) return value;
      if (Date.now() > deadline) {
        const state = describe ? await describe().catch((e) => e.message) : '';
        throw new Error(`timed out waiting for ${fn.toString().slice(0, 120)} ${state}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
