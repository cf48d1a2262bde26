#!/usr/bin/env node
// Static file server for the browser app (Node 20 built-ins only, no dependencies).
//
//   node web/serve.mjs --root DIR [--base /sub/] [--mount /prefix/=DIR ...]
//                      [--port N|0] [--host 127.0.0.1] [--test-control]
//
// - serves DIR under the base path (default "/"); every --mount serves another
//   folder under its own absolute URL prefix (the longest matching prefix wins);
// - single-range requests (`bytes=a-b`, `a-`, `-n`) get 206 + Content-Range,
//   an unsatisfiable range 416; `If-Range` is honoured; several ranges are
//   answered with the whole file (200), as RFC 9110 allows;
// - Accept-Ranges, Content-Length, ETag ("size-mtime"), Last-Modified, HEAD,
//   If-None-Match / If-Modified-Since (304), CORS (`*`, exposed headers,
//   preflight), Cache-Control: no-cache, MIME types for the app's files;
// - a directory serves its index.html (without the trailing slash it redirects
//   to it), and a request for "/" or the base without its slash redirects to
//   the base;
// - the first line on stdout is `Serving DIR at http://HOST:PORT/base/`
//   (with --port 0 the port is the one the system chose).
//
// With --test-control (for the browser tests):
//   POST /__ahma_test/drop?path=/models/x.gguf&after=N
//        the next GET of that path sends the headers and N body bytes, then
//        destroys the socket (a cut download); a GET whose body is N bytes or
//        shorter (a small Range read of the header) has nothing to cut: it is
//        served whole and the drop stays armed for the next one;
//   GET  /__ahma_test/log        JSON array of every request served so far,
//        {method, path, range, status, time, bytes, dropped}; the control
//        endpoints themselves are not logged;
//   POST /__ahma_test/clear-log  empties that log.
//   POST /__ahma_test/throttle?path=/models/x.gguf&bps=N
//        every later GET of that path sends its body at N bytes per second
//        (in 64 KiB pieces); bps=0 lifts it. A slow download to cancel.

import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';

const USAGE =
    'usage: node web/serve.mjs --root DIR [--base /sub/] [--mount /prefix/=DIR ...] ' +
    '[--port N|0] [--host 127.0.0.1] [--test-control]';

const MIME = {
    '.html': 'text/html; charset=utf-8',
    '.htm': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.mjs': 'text/javascript; charset=utf-8',
    '.json': 'application/json; charset=utf-8',
    '.webmanifest': 'application/manifest+json; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.svg': 'image/svg+xml',
    '.png': 'image/png',
    '.jpg': 'image/jpeg',
    '.jpeg': 'image/jpeg',
    '.gif': 'image/gif',
    '.webp': 'image/webp',
    '.ico': 'image/x-icon',
    '.wasm': 'application/wasm',
    '.gguf': 'application/octet-stream',
    '.bin': 'application/octet-stream',
    '.txt': 'text/plain; charset=utf-8',
    '.tsv': 'text/tab-separated-values; charset=utf-8',
    '.map': 'application/json; charset=utf-8',
    '.wgsl': 'text/plain; charset=utf-8',
    '.woff2': 'font/woff2',
};

function fail(msg) {
    process.stderr.write(`serve.mjs: ${msg}\n${USAGE}\n`);
    process.exit(2);
}

/** Normalises a URL prefix to "/x/y/" form. */
function normPrefix(p) {
    let s = String(p).trim();
    if (!s.startsWith('/')) s = '/' + s;
    if (!s.endsWith('/')) s += '/';
    return s.replace(/\/{2,}/g, '/');
}

function parseArgs(argv) {
    const opts = { root: null, base: '/', mounts: [], port: 8080, host: '127.0.0.1', testControl: false };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const eq = a.indexOf('=');
        // accept both "--opt value" and "--opt=value" (the mount value itself contains '=')
        const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
        const value = () => {
            if (inline !== undefined) return inline;
            if (i + 1 >= argv.length) fail(`${name} needs a value`);
            return argv[++i];
        };
        switch (name) {
            case '--root': opts.root = value(); break;
            case '--base': opts.base = value(); break;
            case '--mount': {
                const v = value();
                const k = v.indexOf('=');
                if (k <= 0) fail(`--mount wants /prefix/=DIR, got ${v}`);
                opts.mounts.push({ prefix: v.slice(0, k), dir: v.slice(k + 1) });
                break;
            }
            case '--port': {
                const v = value();
                if (!/^\d+$/.test(v) || Number(v) > 65535) fail(`bad port ${v}`);
                opts.port = Number(v);
                break;
            }
            case '--host': opts.host = value(); break;
            case '--test-control': opts.testControl = true; break;
            case '-h': case '--help':
                process.stdout.write(USAGE + '\n');
                process.exit(0);
                break;
            default: fail(`unknown argument ${a}`);
        }
    }
    if (!opts.root) fail('--root is required');
    opts.root = path.resolve(opts.root);
    opts.base = normPrefix(opts.base);
    for (const m of opts.mounts) {
        m.prefix = normPrefix(m.prefix);
        m.dir = path.resolve(m.dir);
        if (!fs.existsSync(m.dir) || !fs.statSync(m.dir).isDirectory()) fail(`mount folder ${m.dir} is not a directory`);
    }
    if (!fs.existsSync(opts.root) || !fs.statSync(opts.root).isDirectory()) fail(`root ${opts.root} is not a directory`);
    // longest prefix first; the base is just one more mount
    opts.mounts.push({ prefix: opts.base, dir: opts.root });
    opts.mounts.sort((x, y) => y.prefix.length - x.prefix.length);
    return opts;
}

const opts = parseArgs(process.argv.slice(2));

const requestLog = [];
/** path -> number of body bytes to send on the next GET before cutting the connection */
const drops = new Map();
/** path -> body bytes per second for every GET of it */
const throttles = new Map();

function baseHeaders() {
    return {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Expose-Headers': 'Content-Length, Content-Range, ETag, Accept-Ranges, Last-Modified',
        'Cache-Control': 'no-cache',
        'X-Content-Type-Options': 'nosniff',
    };
}

function send(res, status, body, extra = {}) {
    const buf = Buffer.from(body ?? '', 'utf8');
    res.writeHead(status, {
        ...baseHeaders(),
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': buf.length,
        ...extra,
    });
    res.end(res.req.method === 'HEAD' ? undefined : buf);
}

function redirect(res, location) {
    send(res, 301, `moved to ${location}\n`, { Location: location });
}

/** Maps a decoded URL path to {file, mountPrefix} or null when outside every mount. */
function resolvePath(urlPath) {
    for (const m of opts.mounts) {
        if (urlPath.startsWith(m.prefix) || urlPath + '/' === m.prefix) {
            const rel = urlPath.slice(m.prefix.length);
            const file = path.resolve(m.dir, '.' + path.posix.sep + rel);
            if (file !== m.dir && !file.startsWith(m.dir + path.sep)) return { forbidden: true };
            return { file, mount: m, rel };
        }
    }
    return null;
}

/**
 * Parses a Range header against a file size.
 * Returns null (ignore: serve the whole file), 'unsatisfiable', or {start, end} (inclusive).
 */
function parseRange(header, size) {
    const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
    if (!m) return null;
    const specs = m[1].split(',').map((s) => s.trim()).filter(Boolean);
    if (specs.length !== 1) return null; // multipart ranges are not supported: whole file
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(specs[0]);
    if (!r || (r[1] === '' && r[2] === '')) return null; // malformed: ignore
    let start;
    let end;
    if (r[1] === '') {
        // suffix: last n bytes
        const n = Number(r[2]);
        if (n === 0 || size === 0) return 'unsatisfiable';
        start = Math.max(0, size - n);
        end = size - 1;
    } else {
        start = Number(r[1]);
        end = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1);
        if (r[2] !== '' && Number(r[2]) < start) return null; // invalid: ignore
        if (start >= size) return 'unsatisfiable';
    }
    return { start, end };
}

function etagOf(st) {
    return `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
}

function notModified(req, st, etag) {
    const inm = req.headers['if-none-match'];
    if (inm !== undefined) {
        return inm.split(',').map((s) => s.trim().replace(/^W\//, '')).some((t) => t === etag || t === '*');
    }
    const ims = req.headers['if-modified-since'];
    if (ims !== undefined) {
        const t = Date.parse(ims);
        return !Number.isNaN(t) && Math.floor(st.mtimeMs / 1000) * 1000 <= t;
    }
    return false;
}

/** If-Range: the range applies only when the validator still matches. */
function ifRangeMatches(req, st, etag) {
    const v = req.headers['if-range'];
    if (v === undefined) return true;
    const s = v.trim();
    if (s.startsWith('"') || s.startsWith('W/')) return s === etag;
    const t = Date.parse(s);
    return !Number.isNaN(t) && Math.floor(st.mtimeMs / 1000) * 1000 === t;
}

async function serveFile(req, res, file, urlPath, entry) {
    let st;
    try {
        st = await fsp.stat(file);
    } catch {
        return send(res, 404, 'not found\n');
    }
    if (st.isDirectory()) {
        if (!urlPath.endsWith('/')) {
            const u = new URL(req.url, 'http://x');
            return redirect(res, urlPath + '/' + u.search);
        }
        file = path.join(file, 'index.html');
        try {
            st = await fsp.stat(file);
        } catch {
            return send(res, 404, 'not found (no index.html)\n');
        }
        if (!st.isFile()) return send(res, 404, 'not found\n');
    } else if (!st.isFile()) {
        return send(res, 404, 'not found\n');
    }

    const size = st.size;
    const etag = etagOf(st);
    const type = MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    const headers = {
        ...baseHeaders(),
        'Content-Type': type,
        'Accept-Ranges': 'bytes',
        ETag: etag,
        'Last-Modified': st.mtime.toUTCString(),
    };

    let status = 200;
    let start = 0;
    let end = size - 1;
    const rangeHeader = req.headers.range;
    if (rangeHeader !== undefined && ifRangeMatches(req, st, etag)) {
        const r = parseRange(rangeHeader, size);
        if (r === 'unsatisfiable') {
            return send(res, 416, 'range not satisfiable\n', { 'Content-Range': `bytes */${size}` });
        }
        if (r) {
            status = 206;
            ({ start, end } = r);
            headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
        }
    }
    if (status === 200 && rangeHeader === undefined && notModified(req, st, etag)) {
        const h = { ...headers };
        delete h['Content-Type'];
        res.writeHead(304, h);
        return res.end();
    }
    const length = size === 0 ? 0 : end - start + 1;
    headers['Content-Length'] = length;

    if (req.method === 'HEAD' || length === 0) {
        res.writeHead(status, headers);
        return res.end();
    }

    // test control: cut this GET after N body bytes
    let cutAfter = null;
    if (opts.testControl && drops.has(urlPath) && drops.get(urlPath) < length) {
        cutAfter = drops.get(urlPath);
        drops.delete(urlPath);
        entry.dropped = true;
    }

    res.writeHead(status, headers);
    if (cutAfter !== null) {
        if (cutAfter === 0) {
            res.flushHeaders();
            res.socket?.write('', () => res.socket?.destroy());
            setTimeout(() => res.socket?.destroy(), 50);
            return;
        }
        const stream = fs.createReadStream(file, { start, end: start + cutAfter - 1 });
        let sent = 0;
        stream.on('data', (chunk) => {
            sent += chunk.length;
            const last = sent >= cutAfter;
            const ok = res.write(chunk, last ? () => res.socket?.destroy() : undefined);
            if (!ok && !last) {
                stream.pause();
                res.once('drain', () => stream.resume());
            }
        });
        stream.on('error', () => res.socket?.destroy());
        res.on('close', () => stream.destroy());
        return;
    }
    const bps = opts.testControl ? throttles.get(urlPath) : undefined;
    const stream = fs.createReadStream(file, { start, end, highWaterMark: bps ? 64 << 10 : undefined });
    stream.on('error', () => res.destroy());
    res.on('close', () => stream.destroy());
    if (!bps) {
        stream.pipe(res);
        return;
    }
    // throttled: one piece, then a pause as long as the piece takes at `bps`
    stream.on('data', (chunk) => {
        stream.pause();
        res.write(chunk);
        setTimeout(() => { if (!res.destroyed) stream.resume(); }, (chunk.length / bps) * 1000);
    });
    stream.on('end', () => res.end());
}

function readBody(req) {
    return new Promise((resolve) => {
        const parts = [];
        req.on('data', (c) => parts.push(c));
        req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
        req.on('error', () => resolve(''));
    });
}

async function testControl(req, res, url) {
    const what = url.pathname.slice('/__ahma_test/'.length);
    const json = (status, obj) => send(res, status, JSON.stringify(obj) + '\n', { 'Content-Type': 'application/json; charset=utf-8' });
    if (req.method === 'OPTIONS') return preflight(req, res);
    if (what === 'log' && (req.method === 'GET' || req.method === 'HEAD')) return json(200, requestLog);
    if (what === 'clear-log' && req.method === 'POST') {
        await readBody(req);
        requestLog.length = 0;
        return json(200, { ok: true });
    }
    if (what === 'drop' && req.method === 'POST') {
        await readBody(req);
        const p = url.searchParams.get('path');
        const after = url.searchParams.get('after');
        if (!p || !p.startsWith('/') || after === null || !/^\d+$/.test(after)) {
            return json(400, { error: 'want ?path=/url/path&after=N' });
        }
        drops.set(p, Number(after));
        return json(200, { ok: true, path: p, after: Number(after) });
    }
    if (what === 'throttle' && req.method === 'POST') {
        await readBody(req);
        const p = url.searchParams.get('path');
        const bps = url.searchParams.get('bps');
        if (!p || !p.startsWith('/') || bps === null || !/^\d+$/.test(bps)) {
            return json(400, { error: 'want ?path=/url/path&bps=N' });
        }
        if (Number(bps) === 0) throttles.delete(p);
        else throttles.set(p, Number(bps));
        return json(200, { ok: true, path: p, bps: Number(bps) });
    }
    return json(404, { error: `unknown test-control endpoint ${req.method} ${url.pathname}` });
}

function preflight(req, res) {
    res.writeHead(204, {
        ...baseHeaders(),
        'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
        'Access-Control-Allow-Headers': req.headers['access-control-request-headers'] ?? 'Range',
        'Access-Control-Max-Age': '600',
        'Content-Length': 0,
    });
    res.end();
}

async function handle(req, res) {
    let url;
    try {
        url = new URL(req.url, 'http://localhost');
    } catch {
        return send(res, 400, 'bad request\n');
    }
    if (opts.testControl && url.pathname.startsWith('/__ahma_test/')) return testControl(req, res, url);

    let urlPath;
    try {
        urlPath = decodeURIComponent(url.pathname);
    } catch {
        urlPath = null;
    }
    const entry = {
        method: req.method,
        path: urlPath ?? url.pathname,
        range: req.headers.range ?? null,
        status: 0,
        time: Date.now(),
        bytes: 0,
        dropped: false,
    };
    requestLog.push(entry);
    const socket = req.socket;
    const written0 = socket.bytesWritten;
    res.on('close', () => {
        entry.status = res.statusCode;
        entry.bytes = Math.max(0, socket.bytesWritten - written0);
    });

    if (urlPath === null || urlPath.includes('\0')) return send(res, 400, 'bad request\n');
    if (req.method === 'OPTIONS') return preflight(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
        return send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD, OPTIONS' });
    }
    if (urlPath + '/' === opts.base || (urlPath === '/' && opts.base !== '/')) {
        return redirect(res, opts.base + url.search);
    }
    const r = resolvePath(urlPath);
    if (!r) return send(res, 404, 'not found\n');
    if (r.forbidden) return send(res, 403, 'forbidden\n');
    if (urlPath + '/' === r.mount.prefix) return redirect(res, r.mount.prefix + url.search);
    return serveFile(req, res, r.file, urlPath, entry);
}

const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
        process.stderr.write(`serve.mjs: ${e?.stack ?? e}\n`);
        if (!res.headersSent) send(res, 500, 'internal error\n');
        else res.destroy();
    });
});
server.keepAliveTimeout = 5000;

server.on('error', (e) => {
    process.stderr.write(`serve.mjs: ${e.message}\n`);
    process.exit(1);
});

server.listen(opts.port, opts.host, () => {
    const { port } = server.address();
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    process.stdout.write(`Serving ${opts.root} at http://${host}:${port}${opts.base}\n`);
    for (const m of opts.mounts) {
        if (m.dir !== opts.root || m.prefix !== opts.base) {
            process.stdout.write(`  mount ${m.prefix} -> ${m.dir}\n`);
        }
    }
    if (opts.testControl) process.stdout.write('  test control at /__ahma_test/ (drop, throttle, log, clear-log)\n');
});

for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
        server.close();
        server.closeAllConnections?.();
        process.exit(0);
    });
}
