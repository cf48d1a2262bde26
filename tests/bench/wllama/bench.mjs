// Runs bench.html in headless Chromium (the browser tests' flags: WebGPU on SwiftShader) against a
// local GGUF and prints the JSON. Cross-origin isolated (COOP/COEP), so wllama may use threads.
//   cd tests/bench/wllama && npm ci && node bench.mjs /path/model.gguf [prompt] [gen] [gpu_layers]
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { WEBGPU_ARGS, CHROMIUM } from '../../web/helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const [model, prompt = '128', gen = '32', gpuLayers = '999'] = process.argv.slice(2);
if (!model) {
    console.error('usage: node bench.mjs MODEL.gguf [prompt_tokens] [gen_tokens] [gpu_layers]');
    process.exit(2);
}
const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const file = u.pathname === '/model.gguf' ? path.resolve(model) : path.join(here, decodeURIComponent(u.pathname));
    if (!file.startsWith(here) && file !== path.resolve(model)) { res.writeHead(403); return res.end(); }
    fs.stat(file, (err, st) => {
        if (err || !st.isFile()) { res.writeHead(404); return res.end(); }
        const h = {
            'Content-Type': types[path.extname(file)] ?? 'application/octet-stream',
            'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp',
            'Cross-Origin-Resource-Policy': 'same-origin', 'Accept-Ranges': 'bytes',
        };
        const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
        let [start, end, status] = [0, st.size - 1, 200];
        if (m) { start = Number(m[1]); end = m[2] ? Math.min(Number(m[2]), st.size - 1) : st.size - 1; status = 206; h['Content-Range'] = `bytes ${start}-${end}/${st.size}`; }
        h['Content-Length'] = end - start + 1;
        res.writeHead(status, h);
        if (req.method === 'HEAD') return res.end();
        fs.createReadStream(file, { start, end }).pipe(res);
    });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: WEBGPU_ARGS });
try {
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
    await page.goto(`${base}/bench.html?model=${encodeURIComponent(`${base}/model.gguf`)}&prompt=${prompt}&gen=${gen}&gpu_layers=${gpuLayers}`);
    await page.waitForFunction(() => window.result, null, { timeout: 3_600_000, polling: 1000 });
    const r = await page.evaluate(() => window.result);
    const adapter = await page.evaluate(async () => {
        const a = await navigator.gpu?.requestAdapter();
        return a ? (a.info?.description || a.info?.architecture || a.info?.vendor || 'adapter') : null;
    });
    console.log(JSON.stringify({ ...r, browser: `Chromium ${browser.version()}`, adapter, model: path.basename(model), file_bytes: fs.statSync(model).size }, null, 1));
} finally {
    await browser.close();
    server.close();
}
