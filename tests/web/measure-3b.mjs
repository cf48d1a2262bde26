// Measurement (not a test): loads a big GGUF (e.g. the Ahma-3B-shaped synthetic model from
// `ahma synth OUT --preset ahma-3b --mix q4km`) in headless Chromium on SwiftShader through the
// app's benchmark page, samples the engine worker's wasm heap during the download/load, and prints
// the bench JSON. Usage:
//   node tests/web/measure-3b.mjs /path/to/dir model.gguf [prompt_tokens] [gen_tokens] [query]
// where `query` adds the benchmark page's kernel choices, e.g. `shape=128x4&pairs=on`.
import path from 'node:path';
import { startServer, openBrowser, tid, T } from './helpers.mjs';

const [dir, file, prompt = '1', gen = '3', query = ''] = process.argv.slice(2);
if (!dir || !file) {
    console.error('usage: node tests/web/measure-3b.mjs DIR FILE.gguf [prompt_tokens] [gen_tokens] [query]');
    process.exit(2);
}
const server = await startServer({ modelsDir: path.resolve(dir) });
const s = await openBrowser(null, { name: 'measure-3b', server });
const t0 = Date.now();
try {
    const extra = Object.fromEntries(new URLSearchParams(query));
    await s.page.goto(server.appUrl({ ...extra, bench: '1', model: server.modelUrl(file), prompt, gen, lang: 'en' }));
    await s.page.locator(tid('load')).click({ timeout: T(60000) });
    let peakHeap = 0;
    let last = '';
    for (;;) {
        const st = await s.page.evaluate(() => ({
            state: window.ahmaDebug.state(),
            p: window.ahmaDebug.progress(),
            bench: document.querySelector('[data-testid="bench-result"]')?.textContent ?? '',
            err: document.querySelector('[data-testid="error"]')?.textContent ?? '',
        }));
        if (st.p) peakHeap = Math.max(peakHeap, st.p.wasm_heap_bytes);
        const line = st.p ? `${st.state} ${st.p.phase} ${(st.p.bytes / 1e9).toFixed(2)} GB heap ${(st.p.wasm_heap_bytes / 1048576).toFixed(1)} MiB` : st.state;
        if (line !== last) { console.error(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${line}`); last = line; }
        if (st.err) throw new Error(st.err);
        if (st.bench) {
            const info = await s.page.evaluate(() => window.ahmaDebug.modelInfo());
            const bench = JSON.parse(st.bench);
            console.log(JSON.stringify({ ...bench, sampled_peak_wasm_heap_bytes: peakHeap, model_info: info, wall_s: (Date.now() - t0) / 1000 }, null, 1));
            break;
        }
        await new Promise((r) => setTimeout(r, 1000));
    }
    await s.shot('bench');
} finally {
    await s.finish(true);
    await server.stop();
}
