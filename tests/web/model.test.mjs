// Browser tests: model loading. (a) a fixture model from a local URL: progress shown, ready, and
// greedy ids in the browser equal llama.cpp's (the fixture's greedy_ids) for both fixtures;
// (h) a local file through the file input, with zero requests; (i) no WebGPU: the advice panel;
// (j) an early click; (m) a lost GPU device is recovered from the stored copy without a page
// reload; (n) a .gguf dropped on the page loads with zero requests; (o) a model too large for
// the adapter is refused before anything is downloaded; (r) the benchmark page prints the JSON of
// `ahma bench` (with the read probe); (s) the same page with the integer mat-mul.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
    APP_MODEL, T, tid, checkDist, startServer, withBrowser, fixture, loadModel, waitLoaded, trace, waitApp, waitState,
    sleep, networkRequests, streamThenStop, traceMark, messages, writeHeaderOnlyGguf,
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

test('a. fixture models load from a URL with progress; greedy ids equal llama.cpp', { timeout: T(360000) }, async (t) => {
    await withBrowser(t, { name: 'a-load-greedy', server }, async (s) => {
        for (const name of ['ahma_like_legacy', 'kquant_gqa', 'ahma_q4km_layout']) {
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

            // The published Q4_K_M layout (its Q5_0 q/k and Q8_0 v in one decode product) with
            // fewer ids: it adds that product's shader, not another long decode.
            const n = name === 'ahma_q4km_layout' ? 8 : fx.greedy_ids.length;
            const t1 = Date.now();
            const ids = await greedy(s.page, fx, n);
            t.diagnostic(`${name}: generateIds(${fx.prompt_ids.length} ids, ${n}) in ${Date.now() - t1} ms`);
            assert.deepEqual(ids, fx.greedy_ids.slice(0, n), `${name}: browser greedy ids differ from llama.cpp's`);
            assert.equal(await s.page.evaluate(() => window.ahmaDebug.state()), 'ready');
        }
    });
});

test('h. a local .gguf through the file input loads with zero network requests', { timeout: T(180000) }, async (t) => {
    await withBrowser(t, { name: 'h-local-file', server }, async (s) => {
        const fx = fixture(APP_MODEL);
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
        const fx = fixture(APP_MODEL);
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

test('m. a lost GPU device: the error says so, Reload rebuilds it from the stored copy, no page reload', { timeout: T(240000) }, async (t) => {
    await withBrowser(t, { name: 'm-device-lost', server }, async (s) => {
        const { page } = s;
        const fx = fixture(APP_MODEL);
        await loadModel(s, server.modelUrl(fx.gguf));
        await page.evaluate(() => { window.__samePage = true; });
        await server.clearLog();
        // quiet: the idle watchdog stays silent, so the generation meets the loss
        await page.evaluate(() => window.ahmaDebug.loseDevice(true));
        const input = page.locator(tid('chat-input'));
        await input.fill('Hei, kuuletko?');
        await input.press('Enter');
        await waitState(page, 'error', { timeout: T(60000), failOn: ['no-webgpu'] });
        const err = (await page.locator(tid('error')).innerText()).replace(/\s+/g, ' ').trim();
        t.diagnostic(`error: ${err.slice(0, 200)}`);
        assert.match(err, /GPU was reset/);
        const retry = page.locator(tid('retry'));
        assert.match(await retry.innerText(), /Reload the model/);
        // the unanswered message went back into the message box
        assert.equal((await messages(page)).length, 0, 'an unanswered message stayed in the conversation');
        assert.equal(await input.inputValue(), 'Hei, kuuletko?', 'the typed message was lost');
        await s.shot('device-lost');
        await retry.click();
        await waitState(page, 'ready', { timeout: T(120000) });
        assert.equal(await page.evaluate(() => window.__samePage), true, 'the page was reloaded');
        const gets = (await server.log()).filter((e) => e.path === `/models/${fx.gguf}` && e.method === 'GET');
        assert.deepEqual(gets, [], 'the model was downloaded again instead of read from the store');
        assert.deepEqual(await greedy(page, fx, 8), fx.greedy_ids.slice(0, 8), 'greedy ids differ after the recovery');
        // send it again: one key
        const mark = await traceMark(page);
        await input.press('Enter');
        const a = await streamThenStop(page, { mark, steps: 2 });
        assert.ok(a.text.length > 0, 'no answer after the recovery');
        assert.deepEqual((await messages(page)).map((m) => m.role), ['user', 'assistant']);
        await s.shot('recovered');
    });
});

test('q. a GPU device lost while idle is reported at once; the draft stays; Reload recovers', { timeout: T(240000) }, async (t) => {
    await withBrowser(t, { name: 'q-device-lost-idle', server }, async (s) => {
        const { page } = s;
        const fx = fixture(APP_MODEL);
        await loadModel(s, server.modelUrl(fx.gguf));
        const input = page.locator(tid('chat-input'));
        await input.fill('Luonnos, jota ei ole lähetetty');
        const t0 = Date.now();
        await page.evaluate(() => window.ahmaDebug.loseDevice());
        // nothing is sent: the worker's watchdog notices the loss by itself
        await waitState(page, 'error', { timeout: T(20000), failOn: ['no-webgpu'] });
        t.diagnostic(`loss reported after ${Date.now() - t0} ms without any message sent`);
        const err = (await page.locator(tid('error')).innerText()).replace(/\s+/g, ' ').trim();
        t.diagnostic(`error: ${err.slice(0, 200)}`);
        assert.match(err, /GPU was reset/);
        const retry = page.locator(tid('retry'));
        assert.match(await retry.innerText(), /Reload the model/);
        // the model panel knows the model is stored: no "Download" offer
        assert.match(await page.locator(tid('load')).innerText(), /Load the stored model/);
        // Enter does not send into a dead model; the draft is kept
        await input.press('Enter');
        await sleep(300);
        assert.equal((await messages(page)).length, 0, 'a message was sent with no model');
        assert.equal(await input.inputValue(), 'Luonnos, jota ei ole lähetetty', 'the draft was lost');
        await s.shot('device-lost-idle');
        await retry.click();
        await waitState(page, 'ready', { timeout: T(120000) });
        assert.deepEqual(await greedy(page, fx, 8), fx.greedy_ids.slice(0, 8), 'greedy ids differ after the recovery');
        assert.equal(await input.inputValue(), 'Luonnos, jota ei ole lähetetty', 'the draft was lost on reload');
    });
});

test('n. a .gguf dropped on the page loads with zero network requests', { timeout: T(180000) }, async (t) => {
    await withBrowser(t, { name: 'n-drop', server }, async (s) => {
        const fx = fixture(APP_MODEL);
        const { page } = s;
        await page.goto(server.appUrl({ lang: 'en' }));
        await waitApp(page);
        await waitState(page, ['idle']);
        await page.waitForLoadState('networkidle');
        await sleep(500);
        // the file's bytes enter the page before the counting starts
        const b64 = fs.readFileSync(fx.file).toString('base64');
        const dt = await page.evaluateHandle(({ b64, name }) => {
            const bin = atob(b64);
            const bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
            const d = new DataTransfer();
            d.items.add(new File([bytes], name, { type: 'application/octet-stream' }));
            return d;
        }, { b64, name: path.basename(fx.file) });
        await server.clearLog();
        s.requests.length = 0;
        await page.dispatchEvent('.app', 'dragenter', { dataTransfer: dt });
        await page.dispatchEvent('.app', 'dragover', { dataTransfer: dt });
        await page.dispatchEvent('.app', 'drop', { dataTransfer: dt });
        await waitLoaded(page, { click: false, timeout: T(120000) });
        await s.shot('ready');
        const info = await page.evaluate(() => window.ahmaDebug.modelInfo());
        t.diagnostic(`model info: ${JSON.stringify(info).slice(0, 300)}`);
        assert.deepEqual(await greedy(page, fx, 8), fx.greedy_ids.slice(0, 8), 'greedy ids of the dropped model differ from llama.cpp');
        const log = networkRequests(await server.log(), 'path');
        assert.deepEqual(log, [], `the server saw requests during a dropped-file load: ${JSON.stringify(log)}`);
        assert.deepEqual(networkRequests(s.requests).map((r) => r.url), [], 'the browser made requests during a dropped-file load');
    });
});

test('o. a model too large for the adapter is refused before the download, with the reason', { timeout: T(120000) }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ahma-too-big-'));
    const big = await startServer({ modelsDir: dir });
    try {
        await withBrowser(t, { name: 'o-does-not-fit', server: big }, async (s) => {
            const { page } = s;
            await page.goto(big.appUrl({ lang: 'en' }));
            await waitApp(page);
            await waitState(page, ['idle']);
            const limit = await page.evaluate(async () => {
                const a = await navigator.gpu.requestAdapter();
                return Math.min(a.limits.maxStorageBufferBindingSize, a.limits.maxBufferSize);
            });
            // a vocabulary so large that the logits of one prefill batch (64 tokens) exceed any
            // buffer the adapter can bind; the file is the real header over a hole
            const vocab = Math.ceil((limit + 1) / (64 * 4) / 32) * 32 + 32;
            const { size } = writeHeaderOnlyGguf(path.join(dir, 'too-big.gguf'), { dim: 64, vocab, ff: 128, heads: 4 });
            t.diagnostic(`binding limit ${limit} bytes; header-only model with vocab ${vocab}, ${size} bytes`);
            await page.goto(big.appUrl({ lang: 'en', model: big.modelUrl('too-big.gguf') }));
            await waitApp(page);
            await waitState(page, ['idle']);
            await big.clearLog();
            await page.locator(tid('load')).click();
            const fit = page.locator(tid('fit'));
            await page.waitForFunction(() => /does not fit/i.test(document.querySelector('[data-testid="fit"]')?.textContent ?? ''),
                null, { timeout: T(30000) });
            const text = (await fit.innerText()).replace(/\s+/g, ' ').trim();
            t.diagnostic(`fit: ${text}`);
            assert.match(text, /MiB/, 'the reason is missing');
            await s.shot('does-not-fit');
            await sleep(1000);
            assert.notEqual(await page.evaluate(() => window.ahmaDebug.state()), 'downloading');
            const gets = (await big.log()).filter((e) => e.path === '/models/too-big.gguf' && e.method === 'GET');
            t.diagnostic(`model requests: ${JSON.stringify(gets.map((e) => [e.range, e.status, e.bytes]))}`);
            // only the header was read: bounded Range requests of a few MiB from the start
            for (const e of gets) {
                const m = /^bytes=0-(\d+)$/.exec(e.range ?? '');
                assert.ok(m && Number(m[1]) < 8 << 20, `not a header read: ${JSON.stringify(e)}`);
            }
            const entries = await page.evaluate(() => window.ahmaDebug.cacheEntries());
            assert.ok(entries.every((e) => !e.url.endsWith('too-big.gguf') || e.stored === 0), `stored: ${JSON.stringify(entries)}`);
        });
    } finally {
        await big.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('r. the benchmark page (?bench) measures through WebGPU and prints the JSON of ahma bench', { timeout: T(180000) }, async (t) => {
    await withBrowser(t, { name: 'r-bench-page', server }, async (s) => {
        const fx = fixture(APP_MODEL);
        // with the kernel choices `ahma bench` has flags for (mat-vecs walking quarter-units, two
        // per loop step, x in 8-bit integers with packed integer dot products, 128 keys per
        // attention split, 8-token-per-thread mat-mul tiles), and the read probe (Tint compiles
        // its buffer and texture variants)
        await loadModel(s, server.modelUrl(fx.gguf), {
            extra: { bench: '1', prompt: '12', gen: '6', blocks: 'off', pairs: 'on', int8: 'on', split_keys: '128', tile: '64x64x8', read_probe: 'on' },
        });
        const { page } = s;
        await page.waitForFunction(() => (document.querySelector('[data-testid="bench-result"]')?.textContent ?? '') !== '',
            null, { timeout: T(120000) });
        const v = JSON.parse(await page.locator(tid('bench-result')).textContent());
        t.diagnostic(`bench: ${JSON.stringify(v)}`);
        await s.shot('bench-result');
        // the keys `ahma bench --json` prints for the same measurement
        for (const key of ['adapter', 'backend', 'f16', 'subgroups', 'subgroup_min_size', 'subgroup_max_size', 'n_ctx', 'max_batch', 'pipeline_decode',
            'fused_rope', 'mixed_qkv', 'attn_split_keys', 'matmul_tile', 'matvec_pairs', 'matvec_int_dot', 'matmul_int_dot', 'matvec_shape', 'matvec_blocks', 'matmul_rows', 'matmul_lanes', 'attention_rows', 'sampling', 'prompt_tokens', 'prefill_tokens_per_s', 'gen_tokens', 'decode_tokens_per_s',
            'dispatches_per_token', 'submits_per_token', 'readback_bytes_per_token', 'cpu_record_ms_per_token', 'weight_bytes_per_token', 'device_type', 'unchecked',
            'gpu_weight_bytes', 'gpu_kv_bytes', 'gpu_scratch_bytes']) {
            assert.ok(key in v, `no ${key} in ${JSON.stringify(v)}`);
        }
        // the worker's CPU time per decoded token recording and submitting it, read from
        // performance.now(): measured (not the 0 of a model without a clock), and less than a token
        assert.ok(v.cpu_record_ms_per_token > 0, `cpu_record_ms_per_token ${v.cpu_record_ms_per_token}`);
        assert.ok(v.cpu_record_ms_per_token < 1000 / v.decode_tokens_per_s,
            `recording (${v.cpu_record_ms_per_token} ms) takes longer than a whole decoded token`);
        // the page's summary of the same figures, for people reading it
        const row = async (id) => (await page.locator(`${tid(id)} td`).textContent()).trim();
        assert.ok((await row('bench-decode')).includes(`${v.decode_tokens_per_s.toFixed(2)} tok/s`), await row('bench-decode'));
        assert.ok((await row('bench-prefill')).includes(`${v.prefill_tokens_per_s.toFixed(2)} tok/s`), await row('bench-prefill'));
        assert.ok((await row('bench-adapter')).startsWith(`${v.adapter} · ${v.backend}`), await row('bench-adapter'));
        assert.ok((await row('bench-read-probe')).startsWith(`${v.read_probe_gb_per_s.toFixed(2)} GB/s`), await row('bench-read-probe'));
        assert.ok((await row('bench-cpu')).endsWith(' ms'), await row('bench-cpu'));
        assert.equal(await page.locator(`${tid('bench-summary')} tr`).count(), 8, 'a row per headline figure');
        // the JSON goes to the clipboard as printed, for sharing a result
        await s.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
        await page.locator(tid('bench-copy')).click();
        const copied = await page.evaluate(() => navigator.clipboard.readText().catch((e) => `(unreadable: ${e})`));
        if (copied.startsWith('(unreadable')) t.diagnostic(`clipboard ${copied}`);
        else assert.equal(copied, await page.locator(tid('bench-result')).textContent(), 'copy did not put the JSON on the clipboard');
        assert.equal(v.matvec_pairs, true);
        assert.equal(v.matvec_int_dot, true);
        assert.equal(v.attn_split_keys, 128);
        assert.equal(v.matmul_tile, '64x64x8x4');
        assert.equal(v.matmul_rows, false, 'a named tile: prefill runs in tiles');
        assert.equal(v.matvec_shape, '16x32', 'SwiftShader is a fallback (CPU) adapter: the CPU adapters\' shape');
        assert.equal(v.matvec_blocks, false);
        assert.equal(v.matmul_lanes, '16x16x8', 'no subgroups in the browser: the rows product\'s shape for lanes that load X each');
        assert.equal(v.prompt_tokens, 12);
        assert.equal(v.gen_tokens, 6);
        assert.equal(v.f16, false, 'SwiftShader has no shader-f16: the f32 path runs');
        assert.equal(v.device_type, 'Cpu', 'SwiftShader is a fallback adapter: the CPU adapters\' kernels');
        assert.equal(v.unchecked, '', 'the browser keeps its own shader checks');
        assert.deepEqual(v.cooperative_matrix, [], 'WebGPU offers no cooperative matrices');
        assert.equal(v.submits_per_token, 1);
        assert.equal(v.readback_bytes_per_token, 4);
        assert.ok(v.prefill_tokens_per_s > 0 && v.decode_tokens_per_s > 0, 'no speed measured');
        assert.ok(v.dispatches_per_token > 0 && v.weight_bytes_per_token > 0);
        // what a shader reads per second, every way and order, and decode as a share of the best
        const probe = Object.keys(v.read_probe ?? {}).sort();
        assert.deepEqual(probe, ['texels_chunks', 'texels_interleaved', 'u32_chunks', 'u32_interleaved', 'vec4_chunks', 'vec4_interleaved']);
        const rates = Object.values(v.read_probe);
        assert.ok(rates.every((r) => r > 0), 'a read rate is not positive');
        assert.equal(v.read_probe_gb_per_s, Math.max(...rates));
        const ratio = v.implied_gb_per_s / v.read_probe_gb_per_s;
        assert.ok(Math.abs(v.decode_read_ratio - ratio) <= 1e-9 * ratio, `decode_read_ratio ${v.decode_read_ratio}, expected ${ratio}`);
        // the model stays usable after the measurement, and with these choices: greedy ids still
        // equal llama.cpp's
        const ids = await page.evaluate(async ({ ids, n }) => Array.from(await window.ahmaDebug.generateIds(ids, n)),
            { ids: fx.prompt_ids, n: 8 });
        assert.deepEqual(ids, fx.greedy_ids.slice(0, 8), 'greedy ids after the benchmark differ from llama.cpp');
    });
});

test('s. the benchmark page with the integer mat-mul (mm_int8=on), the GPUs\' mat-vec (shape=128x4, blocks=off) and split prefill attention (attn_rows=off): Tint compiles them, greedy ids still equal llama.cpp', { timeout: T(180000) }, async (t) => {
    await withBrowser(t, { name: 's-bench-int8-matmul', server }, async (s) => {
        const fx = fixture(APP_MODEL);
        // prefill's mat-muls and decode's mat-vecs in 8-bit integers, the mat-muls with 8 x 8
        // outputs per thread (the integer variant of every tile fits WebGPU's 16 KiB), the
        // mat-vecs as on GPUs, 128 threads over 4 rows walking quarter-units (SwiftShader, a CPU
        // adapter, gets 16 x 32 walking whole units)
        await loadModel(s, server.modelUrl(fx.gguf), {
            extra: { bench: '1', prompt: '12', gen: '4', int8: 'on', mm_int8: 'on', tile: '64x64x8x8', shape: '128x4', blocks: 'off', attn_rows: 'off' },
        });
        const { page } = s;
        await page.waitForFunction(() => (document.querySelector('[data-testid="bench-result"]')?.textContent ?? '') !== '',
            null, { timeout: T(120000) });
        const v = JSON.parse(await page.locator(tid('bench-result')).textContent());
        t.diagnostic(`bench: ${JSON.stringify(v)}`);
        assert.equal(v.matmul_int_dot, true);
        assert.equal(v.matvec_int_dot, true);
        assert.equal(v.matmul_tile, '64x64x8x8');
        assert.equal(v.matvec_shape, '128x4');
        assert.equal(v.matvec_blocks, false);
        assert.equal(v.attention_rows, false, 'the prompt\'s attention in the split passes, as on GPUs');
        assert.ok(v.prefill_tokens_per_s > 0 && v.decode_tokens_per_s > 0, 'no speed measured');
        // the prompt goes through the integer mat-muls, the continuation through the mat-vecs
        const ids = await greedy(page, fx, 8);
        assert.deepEqual(ids, fx.greedy_ids.slice(0, 8), 'greedy ids with integer products differ from llama.cpp');
    });
});

test('t. the benchmark page with the row-per-invocation mat-mul in another shape (lanes=16x8) reading its input quantized (mm_int8=on): prefill as the CPU adapters run it (and its attention), greedy ids still equal llama.cpp', { timeout: T(180000) }, async (t) => {
    await withBrowser(t, { name: 't-bench-matmul-rows', server }, async (s) => {
        const fx = fixture(APP_MODEL);
        // with mm_int8=on the rows product reads X as the quantize pass writes it (its X8
        // variant: nine words per unit and token), the default rows product is every other
        // load's
        await loadModel(s, server.modelUrl(fx.gguf), { extra: { bench: '1', prompt: '12', gen: '2', lanes: '16x8', mm_int8: 'on' } });
        const { page } = s;
        await page.waitForFunction(() => (document.querySelector('[data-testid="bench-result"]')?.textContent ?? '') !== '',
            null, { timeout: T(120000) });
        const v = JSON.parse(await page.locator(tid('bench-result')).textContent());
        t.diagnostic(`bench: ${JSON.stringify(v)}`);
        assert.equal(v.matmul_rows, true, 'SwiftShader is a CPU adapter: one weight row per invocation by default');
        assert.equal(v.matmul_lanes, '16x8');
        assert.equal(v.matmul_int_dot, true, 'the rows product on the quantized X');
        assert.equal(v.matmul_tile, 'auto');
        assert.equal(v.attention_rows, true, 'and one invocation per token and head in the prompt\'s attention');
        assert.equal(v.subgroups, false, 'the browser path shares no loads through subgroups');
        // the prompt goes through the mat-muls (12 tokens: a partial block of 8), the
        // continuation through the mat-vecs
        const ids = await greedy(page, fx, 8);
        assert.deepEqual(ids, fx.greedy_ids.slice(0, 8), 'greedy ids with the row-per-invocation mat-mul differ from llama.cpp');
    });
});
