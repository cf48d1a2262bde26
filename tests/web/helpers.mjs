// Shared harness of the browser tests: the test server (web/serve.mjs), the system Chromium
// driven by playwright-core with WebGPU on SwiftShader, error collection, screenshots and the
// small page-side helpers (OPFS hashing, waiting for app states).
//
// Environment:
//   AHMA_WEB_DIST      folder served as the app (default: <repo>/dist)
//   AHMA_CHROMIUM      browser executable (default: /usr/bin/chromium)
//   AHMA_WEB_SLOWMO    multiplies every timeout (default 1; SwiftShader on 2 cores is the baseline)

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DIST = path.resolve(process.env.AHMA_WEB_DIST ?? path.join(REPO, 'dist'));
export const MODELS_DIR = path.join(REPO, 'tests', 'fixtures', 'models');
export const ARTIFACTS = path.join(REPO, 'tests', 'web', 'artifacts');
export const CHROMIUM = process.env.AHMA_CHROMIUM ?? '/usr/bin/chromium';
export const BASE = '/ahma/';
export const SLOW = Number(process.env.AHMA_WEB_SLOWMO ?? 1) || 1;

/** Scaled timeout in milliseconds. */
export const T = (ms) => Math.round(ms * SLOW);

const NO_NETWORK_NOISE = [
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-default-apps',
    '--disable-domain-reliability',
    '--metrics-recording-only',
];
export const WEBGPU_ARGS = [
    '--enable-unsafe-webgpu',
    '--enable-features=Vulkan',
    '--use-webgpu-adapter=swiftshader',
    ...NO_NETWORK_NOISE,
];
/** Chromium with no WebGPU adapter: headless without the unsafe-WebGPU switches and without a GPU. */
export const NO_WEBGPU_ARGS = ['--disable-gpu', '--disable-features=WebGPU,Vulkan', ...NO_NETWORK_NOISE];

/**
 * The fixture the app tests load (all but test a, which checks every fixture against llama.cpp):
 * the published Q4_K_M layout in small (Q5_0, a Q8_0 attn_v and ffn_down, F16 output). SwiftShader
 * compiles every shader variant a model needs, about 0.3 s a mat-vec and 1.3 s a mat-mul on the
 * 2-core CI machine, so a file with three weight types loads in ≈ 11 s where kquant_gqa (eight
 * types) takes ≈ 25 s and ahma_like_legacy (seven) ≈ 22 s; it is also the layout users load.
 */
export const APP_MODEL = 'ahma_q4km_layout';

export function fixture(name) {
    const json = JSON.parse(fs.readFileSync(path.join(MODELS_DIR, `${name}.json`), 'utf8'));
    const file = path.join(MODELS_DIR, json.gguf);
    return { ...json, file, size: fs.statSync(file).size };
}

export function sha256File(file) {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

export function checkDist() {
    const index = path.join(DIST, 'index.html');
    assert.ok(
        fs.existsSync(index),
        `${index} is missing: build the app first (bash web/build.sh), or set AHMA_WEB_DIST`,
    );
}

// ---------------------------------------------------------------------------------------------
// test server

/**
 * Starts web/serve.mjs on a random port: DIST under BASE, the fixture models (or `modelsDir`)
 * under /models/, with the test-control endpoints.
 */
export async function startServer({ root = DIST, base = BASE, modelsDir = MODELS_DIR, port = 0 } = {}) {
    const args = [path.join(REPO, 'web', 'serve.mjs'), '--root', root, '--base', base,
        '--mount', `/models/=${modelsDir}`, '--port', String(port), '--host', '127.0.0.1', '--test-control'];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d) => { stderr += d; });
    const killOnExit = () => proc.kill('SIGKILL');
    process.once('exit', killOnExit);
    proc.once('exit', () => process.off('exit', killOnExit));
    const rl = readline.createInterface({ input: proc.stdout });
    const first = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`serve.mjs did not start in 10 s: ${stderr}`)), 10000);
        rl.once('line', (line) => { clearTimeout(timer); resolve(line); });
        proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`serve.mjs exited ${code}: ${stderr}`)); });
    });
    rl.on('line', () => {}); // keep draining
    const m = /^Serving (.+) at (http:\/\/[^\s]+)$/.exec(first);
    assert.ok(m, `unexpected first line of serve.mjs: ${first}`);
    const url = m[2];
    const origin = new URL(url).origin;
    const ctl = async (method, what) => {
        const r = await fetch(`${origin}/__ahma_test/${what}`, { method });
        assert.equal(r.status, 200, `test control ${method} ${what}: ${r.status}`);
        return r.json();
    };
    const server = {
        proc,
        url, // e.g. http://127.0.0.1:PORT/ahma/
        origin,
        modelUrl: (name) => `${origin}/models/${name}`,
        appUrl: (params = {}) => {
            const u = new URL(url);
            for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
            return u.toString();
        },
        log: () => ctl('GET', 'log'),
        clearLog: () => ctl('POST', 'clear-log'),
        drop: (p, after) => ctl('POST', `drop?path=${encodeURIComponent(p)}&after=${after}`),
        throttle: (p, bps) => ctl('POST', `throttle?path=${encodeURIComponent(p)}&bps=${bps}`),
        stopped: false,
        async stop() {
            if (server.stopped) return;
            server.stopped = true;
            const gone = new Promise((r) => proc.once('exit', r));
            proc.kill('SIGTERM');
            const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
            await gone;
            clearTimeout(t);
        },
    };
    return server;
}

// ---------------------------------------------------------------------------------------------
// browser

// Runs in every document before the app: records every change of the status element's
// data-state and of the progress bar / text, so that quick transitions are not missed by polling.
const TRACE_SCRIPT = `(() => {
  if (window.__ahmaTrace) return;
  const trace = window.__ahmaTrace = [];
  const t0 = performance.now();
  const rec = (kind, v) => { if (trace.length < 5000) trace.push({ t: Math.round(performance.now() - t0), kind, v }); };
  const look = (el) => {
    if (!el || el.nodeType !== 1) return;
    const id = el.getAttribute('data-testid');
    if (id === 'status') rec('state', el.getAttribute('data-state'));
    else if (id === 'progress') rec('progress', Number(el.getAttribute('aria-valuenow') ?? el.value));
  };
  const obs = new MutationObserver((muts) => {
    for (const m of muts) {
      if (m.type === 'attributes') look(m.target);
      else {
        for (const n of m.addedNodes) {
          if (n.nodeType === 1) { look(n); n.querySelectorAll?.('[data-testid=status],[data-testid=progress]').forEach(look); }
        }
      }
      const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      const pt = el?.closest?.('[data-testid=progress-text]');
      if (pt) rec('progress-text', pt.textContent.trim());
    }
  });
  obs.observe(document, { subtree: true, childList: true, characterData: true, attributes: true,
    attributeFilter: ['data-state', 'aria-valuenow', 'value'] });
})();`;

/**
 * Launches Chromium with a fresh persistent profile (service worker, OPFS and cache survive
 * reloads inside the test, nothing leaks between tests). Collects page errors (they fail the
 * test in `session.finish()`), console messages, and every request the context makes.
 */
export async function openBrowser(t, { gpu = true, name = 'session', server = null, viewport = { width: 1280, height: 900 } } = {}) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ahma-web-profile-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: gpu ? WEBGPU_ARGS : NO_WEBGPU_ARGS,
        viewport,
        acceptDownloads: false,
        serviceWorkers: 'allow',
        timeout: T(30000),
    });
    await context.addInitScript(TRACE_SCRIPT);
    // hermetic: nothing leaves the machine (such requests are recorded and reported, see
    // foreignRequests); a route on the context also sees the workers' requests
    await context.route((u) => !isLocal(u.href), (route) => route.abort('internetdisconnected'));
    const s = {
        t,
        name,
        server,
        context,
        userDataDir,
        page: null,
        pageErrors: [],
        consoleLines: [],
        requests: [], // {url, method, resourceType, fromSW, time, frame}
        shotIndex: 0,
        closed: false,
    };
    // uncaught exceptions in workers and Rust panics only reach the console: they fail the test too
    const fatalConsole = (where, msg) => {
        if (msg.type() !== 'error') return;
        const text = msg.text();
        if (/^Uncaught\b|panicked at/.test(text)) s.pageErrors.push(`${where} console: ${text.slice(0, 2000)}`);
    };
    const attachPage = (page) => {
        page.on('pageerror', (e) => {
            s.pageErrors.push(`pageerror: ${e.stack || e.message || e}`);
        });
        page.on('crash', () => s.pageErrors.push('page crashed'));
        page.on('console', (msg) => {
            const loc = msg.location();
            s.consoleLines.push(`[${msg.type()}] ${msg.text()}${loc?.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
            fatalConsole('page', msg);
        });
        page.on('worker', (w) => {
            s.consoleLines.push(`[worker] started ${w.url()}`);
            w.on('close', () => s.consoleLines.push(`[worker] closed ${w.url()}`));
            w.on('console', (msg) => {
                s.consoleLines.push(`[worker ${msg.type()}] ${msg.text()}`);
                fatalConsole('worker', msg);
            });
        });
    };
    for (const p of context.pages()) attachPage(p);
    context.on('page', attachPage);
    context.on('serviceworker', (w) => {
        s.consoleLines.push(`[serviceworker] ${w.url()}`);
        w.on('console', (msg) => {
            s.consoleLines.push(`[sw ${msg.type()}] ${msg.text()}`);
            fatalConsole('service worker', msg);
        });
    });
    context.on('request', (r) => {
        let sw = false;
        try { sw = Boolean(r.serviceWorker?.()); } catch { /* older API */ }
        s.requests.push({ url: r.url(), method: r.method(), resourceType: r.resourceType(), fromSW: sw, time: Date.now() });
    });
    context.on('requestfailed', (r) => {
        s.consoleLines.push(`[requestfailed] ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`);
    });
    s.page = context.pages()[0] ?? (await context.newPage());
    s.page.setDefaultTimeout(T(30000));

    /** Screenshot into tests/web/artifacts/<name>-NN-<label>.png */
    s.shot = async (label) => {
        const file = path.join(ARTIFACTS, `${s.name}-${String(++s.shotIndex).padStart(2, '0')}-${label}.png`);
        try {
            await s.page.screenshot({ path: file, fullPage: true, timeout: T(15000) });
        } catch (e) {
            s.consoleLines.push(`[harness] screenshot ${label} failed: ${e.message}`);
        }
        return file;
    };
    /** Requests to hosts other than localhost (there must be none: the app talks to nobody). */
    s.foreignRequests = () => s.requests.filter((r) => !isLocal(r.url));
    /** Closes the browser, writes the console log, fails on page errors. */
    s.finish = async (ok = true) => {
        if (s.closed) return;
        s.closed = true;
        if (!ok) await s.shot('failure');
        try {
            await context.close();
        } catch { /* already gone */ }
        fs.writeFileSync(
            path.join(ARTIFACTS, `${s.name}.console.txt`),
            [...s.consoleLines, '', '# page errors', ...s.pageErrors].join('\n') + '\n',
        );
        fs.rmSync(userDataDir, { recursive: true, force: true });
    };
    s.assertNoPageErrors = () => {
        assert.deepEqual(s.pageErrors, [], `page errors / uncaught exceptions:\n${s.pageErrors.join('\n')}`);
    };
    return s;
}

/**
 * Runs `body(session)` in a fresh browser; the test fails on any page error, uncaught exception
 * or request to a non-local host. On failure a screenshot and the console log land in artifacts/.
 */
export async function withBrowser(t, opts, body) {
    const s = await openBrowser(t, opts);
    let ok = false;
    try {
        await body(s);
        ok = true;
    } catch (e) {
        const tail = s.consoleLines.slice(-40).join('\n');
        const state = await appSummary(s.page).catch(() => '(page unavailable)');
        let log = '';
        if (s.server && !s.server.stopped) {
            log = await s.server.log().then((l) => l.slice(-12).map((x) => JSON.stringify(x)).join('\n'), () => '');
        }
        e.message += `\n--- app: ${state}\n--- last console lines:\n${tail}\n--- page errors:\n${s.pageErrors.join('\n')}` +
            `\n--- last server requests:\n${log}`;
        throw e;
    } finally {
        await s.finish(ok);
    }
    s.assertNoPageErrors();
    const foreign = [...new Set(s.foreignRequests().map((r) => `${r.method} ${r.url}`))];
    if (foreign.length) t?.diagnostic?.(`requests to other hosts (blocked by the harness): ${foreign.join(', ')}`);
}

/** data:, blob:, about: and localhost URLs never leave the machine. */
export function isLocal(url) {
    if (!/^https?:/i.test(url)) return true;
    const h = new URL(url).hostname;
    return h === '127.0.0.1' || h === 'localhost' || h === '[::1]';
}

/**
 * Requests that count as "network" for the zero-request checks: http(s) ones, except the
 * browser's own update check of the service worker script (not something a page can avoid).
 */
export function networkRequests(list, key = 'url') {
    return list.filter((r) => {
        const u = r[key];
        if (key === 'url' && !/^https?:/i.test(u)) return false;
        return !/\/sw\.js$/.test(new URL(u, 'http://x').pathname);
    });
}

// ---------------------------------------------------------------------------------------------
// app helpers (data-testid contract)

export const tid = (id) => `[data-testid="${id}"]`;

export async function appSummary(page) {
    return page.evaluate(() => {
        const q = (id) => document.querySelector(`[data-testid="${id}"]`);
        const st = q('status');
        const err = q('error');
        const msgs = [...document.querySelectorAll('[data-testid="message"]')].map((m) =>
            `${m.dataset.role}:${(m.querySelector('[data-testid="message-content"]')?.textContent ?? '').slice(0, 60)}`);
        return JSON.stringify({
            url: location.href,
            state: st?.dataset.state ?? null,
            status: st?.textContent?.trim().slice(0, 200) ?? null,
            error: err && err.offsetParent !== null ? err.textContent.trim().slice(0, 300) : null,
            progress: q('progress-text')?.textContent?.trim() ?? null,
            messages: msgs.slice(-4),
        });
    });
}

export async function state(page) {
    return page.locator(tid('status')).getAttribute('data-state', { timeout: T(10000) });
}

/**
 * Waits until the status element's data-state is one of `want`. Fails early when the app lands in
 * a state from `failOn` (default: error, no-webgpu) that is not wanted, with the error text.
 */
export async function waitState(page, want, { timeout = T(60000), failOn = ['error', 'no-webgpu'] } = {}) {
    const wants = Array.isArray(want) ? want : [want];
    const bad = failOn.filter((x) => !wants.includes(x));
    const deadline = Date.now() + timeout;
    let last = null;
    while (Date.now() < deadline) {
        last = await page.evaluate(() => document.querySelector('[data-testid="status"]')?.dataset.state ?? null)
            .catch(() => null);
        if (wants.includes(last)) return last;
        if (bad.includes(last)) {
            throw new Error(`app reached state "${last}" while waiting for ${wants.join('|')}: ${await appSummary(page)}`);
        }
        await sleep(100);
    }
    throw new Error(`timeout after ${timeout} ms waiting for state ${wants.join('|')} (last: ${last}): ${await appSummary(page)}`);
}

/** Waits for window.ahmaDebug (the app started). */
export async function waitApp(page, timeout = T(60000)) {
    await page.waitForFunction(() => typeof window.ahmaDebug === 'object' && window.ahmaDebug !== null, null, { timeout });
    await page.locator(tid('status')).waitFor({ state: 'attached', timeout });
}

/**
 * Opens the app with ?model=<url>, clicks `load`, watches the progress and waits for ready.
 * Returns what it saw of the progress.
 */
export async function loadModel(s, modelUrl, { click = true, timeout = T(120000), extra = {}, early = false } = {}) {
    const { page } = s;
    await page.goto(s.server.appUrl({ model: modelUrl, lang: 'en', ...extra }));
    await waitApp(page);
    return waitLoaded(page, { click, timeout, early });
}

/**
 * Waits for `ready`, clicking `load` once when the app sits idle with it enabled (a model that
 * is completely cached loads by itself). Returns the progress values / texts it saw by polling.
 */
export async function waitLoaded(page, { click = true, timeout = T(120000), early = false } = {}) {
    const seen = { states: new Set(), progress: [], progressText: [], clicked: false };
    if (click && !early) {
        // let the app finish its look at the selected model first (the fit verdict); test j
        // covers a click before that
        await page.waitForFunction(() => {
            const f = document.querySelector('[data-testid="fit"]');
            const st = document.querySelector('[data-testid="status"]')?.dataset.state;
            return st === 'ready' || (f && f.textContent.trim() !== '');
        }, null, { timeout: T(20000) }).catch(() => {});
    }
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
        const snap = await page.evaluate(() => {
            const q = (id) => document.querySelector(`[data-testid="${id}"]`);
            const p = q('progress');
            const load = q('load');
            return {
                state: q('status')?.dataset.state ?? null,
                now: p ? Number(p.getAttribute('aria-valuenow') ?? p.value) : null,
                text: q('progress-text')?.textContent?.trim() ?? null,
                canLoad: Boolean(load && !load.disabled && load.offsetParent !== null),
            };
        });
        seen.states.add(snap.state);
        if (snap.now !== null && !Number.isNaN(snap.now)) seen.progress.push(snap.now);
        if (snap.text) seen.progressText.push(snap.text);
        if (snap.state === 'ready') return seen;
        if (snap.state === 'error' || snap.state === 'no-webgpu') {
            throw new Error(`load failed (state ${snap.state}): ${await appSummary(page)}`);
        }
        if (click && !seen.clicked && snap.state === 'idle' && snap.canLoad) {
            seen.clicked = true;
            await page.locator(tid('load')).click();
        }
        await sleep(50);
    }
    throw new Error(`model not ready after ${timeout} ms: ${await appSummary(page)}`);
}

/** SHA-256 (hex) of a file in OPFS given its path from the OPFS root, computed in the page. */
export async function opfsSha256(page, opfsPath) {
    return page.evaluate(async (p) => {
        let dir = await navigator.storage.getDirectory();
        for (const part of p.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
        const fh = await dir.getFileHandle(p[p.length - 1]);
        const file = await fh.getFile();
        const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
        return { size: file.size, sha256: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('') };
    }, opfsPath);
}

/** The text of an OPFS file given its path from the OPFS root (in the page). */
export async function opfsReadText(page, opfsPath) {
    return page.evaluate(async (p) => {
        let dir = await navigator.storage.getDirectory();
        for (const part of p.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
        return (await (await dir.getFileHandle(p[p.length - 1])).getFile()).text();
    }, opfsPath);
}

/** Replaces the contents of an OPFS file with `text` (in the page). */
export async function opfsWriteText(page, opfsPath, text) {
    return page.evaluate(async ({ p, text }) => {
        let dir = await navigator.storage.getDirectory();
        for (const part of p.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
        const w = await (await dir.getFileHandle(p[p.length - 1])).createWritable();
        await w.write(text);
        await w.close();
    }, { p: opfsPath, text });
}

/** Overwrites `len` bytes at `offset` of an OPFS file with random bytes (in the page). */
export async function opfsCorrupt(page, opfsPath, offset, len) {
    const bytes = [...randomBytes(len)];
    return page.evaluate(async ({ p, offset, bytes }) => {
        let dir = await navigator.storage.getDirectory();
        for (const part of p.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
        const fh = await dir.getFileHandle(p[p.length - 1]);
        const w = await fh.createWritable({ keepExistingData: true });
        await w.seek(offset);
        await w.write(new Uint8Array(bytes));
        await w.close();
        return (await fh.getFile()).size;
    }, { p: opfsPath, offset, bytes });
}

/** The cache entry of `modelUrl` from ahmaDebug.cacheEntries(). */
export async function cacheEntryFor(page, modelUrl) {
    const entries = await page.evaluate(() => window.ahmaDebug.cacheEntries());
    const name = modelUrl.split('/').pop();
    const e = entries.find((x) => x.url === modelUrl) ?? entries.find((x) => String(x.url).endsWith(name));
    assert.ok(e, `no cache entry for ${modelUrl} in ${JSON.stringify(entries)}`);
    assert.ok(Array.isArray(e.path) && e.path.length > 0, `cache entry without an OPFS path: ${JSON.stringify(e)}`);
    return e;
}

/** Texts of the messages: [{role, text}] */
export async function messages(page) {
    return page.evaluate(() => [...document.querySelectorAll('[data-testid="message"]')].map((m) => ({
        role: m.dataset.role,
        text: m.querySelector('[data-testid="message-content"]')?.textContent ?? '',
    })));
}

/** Text of the last assistant message ('' when none). */
export async function lastAssistant(page) {
    const ms = await messages(page);
    const a = ms.filter((m) => m.role === 'assistant');
    return a.length ? a[a.length - 1].text : '';
}

/** Waits for the service worker to control the page (reloading once if needed). */
export async function waitServiceWorker(page, timeout = T(30000)) {
    const ok = await page.waitForFunction(async () => {
        if (!('serviceWorker' in navigator)) return false;
        const reg = await navigator.serviceWorker.getRegistration();
        return Boolean(reg && reg.active && reg.active.state === 'activated');
    }, null, { timeout, polling: 200 }).then(() => true, () => false);
    assert.ok(ok, 'no active service worker registration');
}

/** The recorded state / progress history of the current document (see TRACE_SCRIPT). */
export async function trace(page) {
    return page.evaluate(() => window.__ahmaTrace ?? []);
}

/**
 * Opens a same-origin page outside the app (a fixture JSON under /models/, outside the service
 * worker's scope): no app, no worker, so no OPFS file is locked. Used to inspect or damage OPFS.
 */
export async function neutralPage(s) {
    await s.page.goto(`${s.server.origin}/models/ahma_like_legacy.json`);
}

/** Runs `fn` until it does not throw (OPFS locks are released asynchronously after a navigation). */
export async function retrying(fn, { tries = 20, delay = 250 } = {}) {
    let last;
    for (let i = 0; i < tries; i++) {
        try {
            return await fn();
        } catch (e) {
            last = e;
            await sleep(delay);
        }
    }
    throw last;
}

/** Opens the settings panel if it is hidden. */
export async function openSettings(page) {
    const panel = page.locator(tid('settings-panel'));
    if (!(await panel.isVisible())) await page.locator(tid('settings-toggle')).click();
    await panel.waitFor({ state: 'visible', timeout: T(5000) });
}

/** Closes the settings panel if it is visible. */
export async function closeSettings(page) {
    const panel = page.locator(tid('settings-panel'));
    if (await panel.isVisible()) {
        await page.locator(tid('settings-toggle')).click();
        await panel.waitFor({ state: 'hidden', timeout: T(5000) }).catch(() => {});
    }
}

/** Sets a settings field: checkbox (boolean) or input (string/number), firing input+change. */
export async function setSetting(page, name, value) {
    const el = page.locator(tid(`setting-${name}`));
    if (typeof value === 'boolean') {
        await el.setChecked(value);
    } else {
        await el.fill(String(value));
        await el.dispatchEvent('change');
        await el.blur();
    }
}

/**
 * Sends `text` through the chat input with Enter and waits for the answer to finish.
 * Returns {text, ids, growth} where growth is the list of distinct lengths seen while streaming.
 */
export async function chatRoundTrip(page, text, { timeout = T(90000) } = {}) {
    const before = (await messages(page)).length;
    const mark = await traceMark(page);
    const input = page.locator(tid('chat-input'));
    await input.fill(text);
    await input.press('Enter');
    return waitAnswer(page, { before, mark, timeout });
}

/** Current length of the state trace (pass to waitAnswer to only look at later states). */
export async function traceMark(page) {
    return page.evaluate(() => (window.__ahmaTrace ?? []).length);
}

/**
 * Waits until the app went through `generating` (after trace position `mark`) and is `ready`
 * again. Returns {text, ids, growth}: the last answer, its ids, the distinct lengths seen.
 */
export async function waitAnswer(page, { before = 0, mark = 0, timeout = T(90000) } = {}) {
    const growth = [];
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
        const snap = await page.evaluate((mark) => ({
            state: document.querySelector('[data-testid="status"]')?.dataset.state,
            generated: (window.__ahmaTrace ?? []).slice(mark).some((e) => e.kind === 'state' && e.v === 'generating'),
            ms: [...document.querySelectorAll('[data-testid="message"]')].map((m) => ({
                role: m.dataset.role,
                len: (m.querySelector('[data-testid="message-content"]')?.textContent ?? '').length,
            })),
        }), mark);
        if (snap.state === 'error') throw new Error(`error while generating: ${await appSummary(page)}`);
        const last = snap.ms[snap.ms.length - 1];
        if (last?.role === 'assistant' && snap.ms.length > before - 1 && growth[growth.length - 1] !== last.len) growth.push(last.len);
        if (snap.generated && snap.state === 'ready') {
            return {
                text: await lastAssistant(page),
                ids: await page.evaluate(async () => Array.from(await window.ahmaDebug.lastAnswerIds())),
                growth,
            };
        }
        await sleep(40);
    }
    throw new Error(`no finished answer after ${timeout} ms: ${await appSummary(page)}`);
}

/**
 * Waits (after trace position `mark`) for a streaming answer to grow in `steps` visible steps,
 * then clicks `stop` and waits for `ready`. If the answer ends by itself first, that is fine.
 * Bounding answers by `stop` keeps the tests independent of how slow SwiftShader is and of
 * whether the length setting counts the prompt. Returns {text, ids, growth, stopped}.
 */
export async function streamThenStop(page, { mark = 0, steps = 4, timeout = T(120000) } = {}) {
    const deadline = Date.now() + timeout;
    const growth = [];
    let generating = false;
    while (Date.now() < deadline) {
        const snap = await page.evaluate((mark) => {
            const ms = document.querySelectorAll('[data-testid="message"]');
            const last = ms[ms.length - 1];
            return {
                state: document.querySelector('[data-testid="status"]')?.dataset.state,
                generated: (window.__ahmaTrace ?? []).slice(mark).some((e) => e.kind === 'state' && e.v === 'generating'),
                role: last?.dataset.role,
                len: (last?.querySelector('[data-testid="message-content"]')?.textContent ?? '').length,
            };
        }, mark);
        if (snap.state === 'error') throw new Error(`error while generating: ${await appSummary(page)}`);
        if (snap.state === 'generating') generating = true;
        if (snap.role === 'assistant' && snap.len > 0 && growth[growth.length - 1] !== snap.len) growth.push(snap.len);
        const done = snap.generated && snap.state === 'ready';
        if (done || (generating && growth.length >= steps)) {
            let stopped = false;
            if (!done) {
                await page.locator(tid('stop')).click();
                stopped = true;
                await waitState(page, 'ready', { timeout: T(5000) });
            }
            return {
                text: await lastAssistant(page),
                ids: await page.evaluate(async () => Array.from(await window.ahmaDebug.lastAnswerIds())),
                growth,
                stopped,
            };
        }
        await sleep(30);
    }
    throw new Error(`the answer did not stream ${steps} steps in ${timeout} ms (lengths ${growth}): ${await appSummary(page)}`);
}

/** Sends `text` with Enter, lets the answer stream `steps` steps, stops it. */
export async function sendAndStop(page, text, opts = {}) {
    const mark = await traceMark(page);
    const input = page.locator(tid('chat-input'));
    await input.fill(text);
    await input.press('Enter');
    return streamThenStop(page, { mark, ...opts });
}

/** Clicks the (last) `regenerate`, lets the new answer stream `steps` steps, stops it. */
export async function regenerateAndStop(page, opts = {}) {
    const mark = await traceMark(page);
    await page.locator(tid('regenerate')).last().click();
    return streamThenStop(page, { mark, ...opts });
}

/** The common prefix length of two id lists. */
export function commonPrefix(a, b) {
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return i;
}

/**
 * Waits until the app has finished looking at the selected model before any download (the fit
 * check may read the header with a Range request): the `load` button is enabled and no request
 * for `modelPath` is still open on the server. Then the next GET of the model is the download.
 */
export async function waitModelChecked(s, modelPath, timeout = T(30000)) {
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
        const canLoad = await s.page.evaluate(() => {
            const b = document.querySelector('[data-testid="load"]');
            const f = document.querySelector('[data-testid="fit"]');
            return Boolean(b && !b.disabled && b.offsetParent !== null && f && f.textContent.trim() !== '');
        });
        const open = (await s.server.log()).filter((e) => e.path === modelPath && e.status === 0);
        if (canLoad && open.length === 0) return;
        await sleep(100);
    }
    throw new Error(`the load button never became usable: ${await appSummary(s.page)}`);
}

// ---------------------------------------------------------------------------------------------
// a GGUF header without its data (for the fit check)

/**
 * Writes a Llama GGUF v3 (F16 matrices, F32 norms) whose data is a hole: the header is real,
 * the file is `truncate`d to the full size the tensor table claims (a sparse file, nothing
 * written). Enough for everything that reads only the header (the fit check); the data reads as
 * zeros. Returns {file, size}.
 */
export function writeHeaderOnlyGguf(file, { dim, vocab, ff, layers = 1, heads, headsKv = heads, ctx = 2048 }) {
    const parts = [];
    const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
    const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
    const f32 = (v) => { const b = Buffer.alloc(4); b.writeFloatLE(v); parts.push(b); };
    const str = (s) => { const b = Buffer.from(s, 'utf8'); u64(b.length); parts.push(b); };
    const kv = [
        ['general.architecture', 8, 'llama'],
        ['general.name', 8, 'header-only test model'],
        ['llama.context_length', 4, ctx],
        ['llama.embedding_length', 4, dim],
        ['llama.block_count', 4, layers],
        ['llama.feed_forward_length', 4, ff],
        ['llama.attention.head_count', 4, heads],
        ['llama.attention.head_count_kv', 4, headsKv],
        ['llama.attention.layer_norm_rms_epsilon', 6, 1e-6],
        ['llama.rope.dimension_count', 4, dim / heads],
        ['llama.vocab_size', 4, vocab],
    ];
    const kvDim = (dim / heads) * headsKv;
    const tensors = [['token_embd.weight', [dim, vocab]], ['output_norm.weight', [dim]], ['output.weight', [dim, vocab]]];
    for (let l = 0; l < layers; l++) {
        tensors.push(
            [`blk.${l}.attn_norm.weight`, [dim]], [`blk.${l}.attn_q.weight`, [dim, dim]],
            [`blk.${l}.attn_k.weight`, [dim, kvDim]], [`blk.${l}.attn_v.weight`, [dim, kvDim]],
            [`blk.${l}.attn_output.weight`, [dim, dim]], [`blk.${l}.ffn_norm.weight`, [dim]],
            [`blk.${l}.ffn_gate.weight`, [dim, ff]], [`blk.${l}.ffn_up.weight`, [dim, ff]],
            [`blk.${l}.ffn_down.weight`, [ff, dim]],
        );
    }
    parts.push(Buffer.from('GGUF'));
    u32(3);
    u64(tensors.length);
    u64(kv.length);
    for (const [k, type, v] of kv) {
        str(k);
        u32(type);
        if (type === 8) str(v); else if (type === 6) f32(v); else u32(v);
    }
    let offset = 0n;
    for (const [name, dims] of tensors) {
        str(name);
        u32(dims.length);
        for (const d of dims) u64(d);
        const norm = dims.length === 1; // norms are F32, matrices F16
        u32(norm ? 0 : 1);
        u64(offset);
        const bytes = BigInt(dims.reduce((a, b) => a * b, 1)) * (norm ? 4n : 2n);
        offset += (bytes + 31n) / 32n * 32n;
    }
    const header = Buffer.concat(parts);
    const dataStart = Math.ceil(header.length / 32) * 32;
    fs.writeFileSync(file, header);
    const size = BigInt(dataStart) + offset;
    fs.truncateSync(file, Number(size));
    return { file, size: Number(size) };
}
