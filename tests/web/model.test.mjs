// Browser tests: model loading. (a) a fixture model from a local URL: progress shown, ready, and
// greedy ids in the browser equal llama.cpp's (the fixture's greedy_ids) for both fixtures;
// (h) a local file through the file input, with zero requests; (i) no WebGPU: the advice panel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    T, tid, checkDist, startServer, withBrowser, fixture, loadModel, waitLoaded, trace, waitApp, waitState,
    sleep, networkRequests,
} from './helpers.mjs';

let server;
before(async () => {
    checkDist();
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

async function greedy(page, fx, n = fx.greedy_ids.length) {
    return page.evaluate(async ({ ids, n }) => Array.from(await window.ahmaDebug.generateIds(ids, n)),
        { ids: fx.prompt_ids, n });
}

test('a. fixture models load from a URL with progress; greedy ids equal llama.cpp', { timeout: T(240000) }, async (t) => {
    await withBrowser(t, { name: 'a-load-greedy', server }, async (s) => {
        for (const name of ['ahma_like_legacy', 'kquant_gqa']) {
            const fx = fixture(name);
            const url = server.modelUrl(fx.gguf);
            const t0 = Date.now();
            const seen = await loadModel(s, url);
            const tr = await trace(s.page);
            const states = tr.filter((e) => e.kind === 'state').map((e) => e.v);
            const progress = [...seen.progress, ...tr.filter((e) => e.kind === 'progress').map((e) => e.v)];
            const texts = [...seen.progressText, ...tr.filter((e) => e.kind === 'progress-text').map((e) => e.v)]
                .filter(Boolean);
            t.diagnostic(`${name}: ready in ${Date.now() - t0} ms; states ${[...new Set(states)].join(' > ')}; ` +
                `${progress.length} progress values, e.g. ${texts.slice(-1)[0] ?? '-'}`);
            assert.ok(states.includes('downloading'), `state never was "downloading": ${states.join(',')}`);
            assert.ok(progress.some((v) => v > 0), `progress never moved: ${JSON.stringify(progress.slice(0, 20))}`);
            assert.ok(texts.length > 0, 'progress-text never showed anything');
            await s.shot(`${name}-ready`);

            const t1 = Date.now();
            const ids = await greedy(s.page, fx);
            t.diagnostic(`${name}: generateIds(${fx.prompt_ids.length} ids, ${fx.greedy_ids.length}) in ${Date.now() - t1} ms`);
            assert.deepEqual(ids, fx.greedy_ids, `${name}: browser greedy ids differ from llama.cpp's`);
            assert.equal(await s.page.evaluate(() => window.ahmaDebug.state()), 'ready');
        }
    });
});

test('h. a local .gguf through the file input loads with zero network requests', { timeout: T(180000) }, async (t) => {
    await withBrowser(t, { name: 'h-local-file', server }, async (s) => {
        const fx = fixture('kquant_gqa');
        const { page } = s;
        await page.goto(server.appUrl({ lang: 'en' }));
        await waitApp(page);
        await waitState(page, ['idle', 'ready']);
        await page.waitForLoadState('networkidle');
        await sleep(500);
        await server.clearLog();
        s.requests.length = 0;
        await page.locator(tid('file-input')).setInputFiles(fx.file);
        // choosing the file starts the load; if the app waits for `load` instead, click it
        const started = await page.waitForFunction(
            () => document.querySelector('[data-testid="status"]')?.dataset.state !== 'idle', null,
            { timeout: T(8000) },
        ).then(() => true, () => false);
        if (!started) t.diagnostic('choosing the file did not start loading by itself: clicking load');
        await waitLoaded(page, { timeout: T(120000) });
        await s.shot('ready');
        const ids = await greedy(page, fx, 8);
        const log = networkRequests(await server.log(), 'path');
        const reqs = networkRequests(s.requests);
        assert.deepEqual(log, [], `the server saw requests during a local-file load: ${JSON.stringify(log)}`);
        assert.deepEqual(reqs.map((r) => r.url), [], 'the browser made requests during a local-file load');
        assert.deepEqual(ids, fx.greedy_ids.slice(0, 8), 'greedy ids of the locally loaded model differ from llama.cpp');
    });
});

test('i. without WebGPU the no-webgpu panel explains what to do', { timeout: T(90000) }, async (t) => {
    await withBrowser(t, { name: 'i-no-webgpu', server, gpu: false }, async (s) => {
        const { page } = s;
        await page.goto(server.appUrl({ lang: 'en' }));
        const adapter = await page.evaluate(async () => {
            if (!('gpu' in navigator)) return 'no navigator.gpu';
            return (await navigator.gpu.requestAdapter()) ? 'adapter' : 'null adapter';
        });
        assert.notEqual(adapter, 'adapter', 'the browser was launched without WebGPU but still has an adapter');
        const panel = page.locator(tid('no-webgpu'));
        await panel.waitFor({ state: 'visible', timeout: T(60000) });
        await waitState(page, 'no-webgpu', { failOn: ['error'] });
        const text = (await panel.innerText()).trim();
        t.diagnostic(`no-webgpu (${adapter}): ${text.replace(/\s+/g, ' ').slice(0, 200)}`);
        assert.ok(text.length >= 30, `no advice in the no-webgpu panel: "${text}"`);
        assert.match(text, /WebGPU/i);
        await s.shot('no-webgpu');
    });
});

test('j. load clicked the moment it is enabled (before the fit verdict) still loads', { timeout: T(150000) }, async (t) => {
    await withBrowser(t, { name: 'j-early-click', server }, async (s) => {
        const { page } = s;
        const fx = fixture('kquant_gqa');
        await page.goto(server.appUrl({ model: server.modelUrl(fx.gguf), lang: 'en' }));
        await waitApp(page);
        await page.waitForFunction(() => {
            const b = document.querySelector('[data-testid="load"]');
            return document.querySelector('[data-testid="status"]')?.dataset.state === 'idle' && b && !b.disabled;
        }, null, { timeout: T(30000) });
        const fit = await page.locator(tid('fit')).innerText();
        await page.locator(tid('load')).click();
        t.diagnostic(`clicked with fit text "${fit}"`);
        await waitLoaded(page, { click: false, timeout: T(120000) });
        assert.deepEqual(await greedy(page, fx, 4), fx.greedy_ids.slice(0, 4));
    });
});
