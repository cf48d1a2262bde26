// Browser tests: storage. (c) offline: after a first visit the service worker serves the app and
// the cached model loads by itself with the server gone; (d) a download cut mid-way resumes with
// a Range request after a reload and ends byte-identical; (e) a corrupted stored model is
// detected and downloaded again, and a store record without the fast checksum (an older build's)
// is checked by its SHA-256 and completed.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import {
    APP_MODEL, T, tid, checkDist, startServer, withBrowser, fixture, loadModel, waitApp, waitState, sleep,
    sha256File, opfsSha256, opfsCorrupt, opfsReadText, opfsWriteText, cacheEntryFor, waitServiceWorker, sendAndStop, neutralPage,
    retrying, appSummary, state, waitModelChecked,
} from './helpers.mjs';

before(() => {
    checkDist();
});

/** Every test gets its own server (c stops it). */
async function withServer(fn) {
    const server = await startServer();
    try {
        return await fn(server);
    } finally {
        await server.stop();
    }
}

/** Stored bytes of the model in OPFS, read from a same-origin page outside the app. */
async function storedSha(s, modelUrl) {
    const entry = await cacheEntryFor(s.page, modelUrl);
    await neutralPage(s);
    const got = await retrying(() => opfsSha256(s.page, entry.path));
    return { entry, ...got };
}

test('c. offline: the app shell and the cached model load from the browser alone', { timeout: T(240000) }, async (t) => {
    await withServer(async (server) => {
        await withBrowser(t, { name: 'c-offline', server }, async (s) => {
            const { page, context } = s;
            const fx = fixture(APP_MODEL);
            const url = server.modelUrl(fx.gguf);
            await loadModel(s, url);
            await waitServiceWorker(page);
            const controlled = await page.waitForFunction(() => Boolean(navigator.serviceWorker.controller), null,
                { timeout: T(15000) }).then(() => true, () => false);
            t.diagnostic(controlled ? 'the service worker controls the first visit' : 'the first visit is not controlled');
            await sleep(500);

            await server.stop();
            await context.setOffline(true);
            await context.route((u) => !/^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(u.href), (r) => r.abort());
            s.requests.length = 0;
            await page.reload();
            await waitApp(page);
            await waitState(page, 'ready', { timeout: T(120000) });
            await s.shot('offline-ready');
            assert.equal(await page.evaluate(() => navigator.onLine), false);
            const a = await sendAndStop(page, 'Hei, toimiiko tämä ilman verkkoa?', { steps: 3 });
            assert.ok(a.text.length > 0, 'empty answer offline');
            await s.shot('offline-chat');
            t.diagnostic(`offline answer: ${a.ids.length} tokens`);
        });
    });
});

test('d. a cut download resumes with a Range request and ends byte-identical', { timeout: T(240000) }, async (t) => {
    await withServer(async (server) => {
        await withBrowser(t, { name: 'd-resume', server }, async (s) => {
            const { page } = s;
            const fx = fixture(APP_MODEL);
            const url = server.modelUrl(fx.gguf);
            // past the first 4 MiB: the app may read the header with a bounded Range request first
            // (served whole: the server only cuts a response longer than the cut)
            const cut = randomInt(Math.max(Math.floor(fx.size * 0.15), (4 << 20) + 1), Math.floor(fx.size * 0.85));
            t.diagnostic(`cutting ${fx.gguf} (${fx.size} bytes) after ${cut} bytes`);
            await page.goto(server.appUrl({ model: url, lang: 'en' }));
            await waitApp(page);
            await waitState(page, ['idle']);
            await waitModelChecked(s, `/models/${fx.gguf}`);
            await server.drop(`/models/${fx.gguf}`, cut);
            await page.locator(tid('load')).click();
            await waitState(page, 'error', { timeout: T(60000), failOn: ['no-webgpu', 'ready'] });
            await page.locator(tid('error')).waitFor({ state: 'visible', timeout: T(5000) });
            await page.locator(tid('retry')).waitFor({ state: 'visible', timeout: T(5000) });
            const errText = (await page.locator(tid('error')).innerText()).trim();
            assert.ok(errText.length > 0, 'empty error message');
            t.diagnostic(`error shown: ${errText.replace(/\s+/g, ' ').slice(0, 160)}`);
            await s.shot('cut-error');
            const log1 = await server.log();
            assert.ok(log1.some((e) => e.path === `/models/${fx.gguf}` && e.dropped), 'the server never cut the download');

            await server.clearLog();
            await page.reload();
            await waitApp(page);
            const st = await waitState(page, ['idle', 'error', 'ready', 'downloading', 'loading'], { failOn: ['no-webgpu'] });
            assert.notEqual(st, 'ready', 'an incomplete model counted as complete');
            if (st !== 'downloading' && st !== 'loading') await page.locator(tid('load')).click();
            await waitState(page, 'ready', { timeout: T(120000) });
            await s.shot('resumed-ready');
            const gets = (await server.log()).filter((e) => e.path === `/models/${fx.gguf}` && e.method === 'GET');
            t.diagnostic(`model requests after the reload: ${JSON.stringify(gets.map((e) => [e.range, e.status]))}`);
            const resumed = gets.find((e) => {
                const m = /^bytes=(\d+)-/.exec(e.range ?? '');
                return m && Number(m[1]) > 0 && e.status === 206;
            });
            assert.ok(resumed, `no resuming Range request (bytes=N- with N > 0): ${JSON.stringify(gets)}`);
            const start = Number(/^bytes=(\d+)-/.exec(resumed.range)[1]);
            assert.ok(start <= cut, `resumed at ${start}, after the cut at ${cut}`);
            // (a bounded read of the header, bytes=0-N, is fine; the whole file again is not)
            assert.ok(!gets.some((e) => !e.range || /^bytes=0-$/.test(e.range)), `the whole file was fetched again: ${JSON.stringify(gets)}`);

            const want = sha256File(fx.file);
            const got = await storedSha(s, url);
            assert.equal(got.size, fx.size, 'stored size differs from the original');
            assert.equal(got.sha256, want, 'stored bytes differ from the original');
            if (got.entry.sha256) assert.equal(got.entry.sha256, want, 'cacheEntries() sha256 is wrong');
            assert.equal(got.entry.complete, true);
        });
    });
});

test('e. a corrupted stored model is detected and downloaded again; delete frees it', { timeout: T(240000) }, async (t) => {
    await withServer(async (server) => {
        await withBrowser(t, { name: 'e-corrupt', server }, async (s) => {
            const { page } = s;
            const fx = fixture(APP_MODEL);
            const url = server.modelUrl(fx.gguf);
            const want = sha256File(fx.file);
            await loadModel(s, url);
            const before = await storedSha(s, url);
            assert.equal(before.sha256, want);

            const at = randomInt(Math.floor(fx.size * 0.3), Math.floor(fx.size * 0.7));
            const size = await retrying(() => opfsCorrupt(page, before.entry.path, at, 4096));
            assert.equal(size, fx.size);
            const damaged = await opfsSha256(page, before.entry.path);
            assert.notEqual(damaged.sha256, want, 'corrupting the stored file did not change it');
            t.diagnostic(`overwrote 4096 bytes at ${at}`);

            await server.clearLog();
            await page.goto(server.appUrl({ model: url, lang: 'en' }));
            await waitApp(page);
            // the app notices (complete in cache, so it loads by itself and must verify first)
            const deadline = Date.now() + T(120000);
            let clicked = false;
            let noticed = '';
            for (;;) {
                assert.ok(Date.now() < deadline, `not ready again: ${await appSummary(page)}`);
                const st = await state(page);
                if (!noticed) {
                    noticed = await page.evaluate(() => {
                        const re = /corrupt|damaged|mismatch|checksum|integrity|sha-?256|broken|invalid|vioittu|viallinen|tarkist/i;
                        const el = [...document.querySelectorAll('body *')].find((e) => e.children.length === 0 &&
                            e.offsetParent !== null && re.test(e.textContent));
                        return el ? el.textContent.trim().slice(0, 200) : '';
                    });
                    if (noticed) await s.shot('corruption-notice');
                }
                if (st === 'ready') break;
                if ((st === 'idle' || st === 'error') && !clicked) {
                    // The app may start the load by itself (the model was complete in cache) while
                    // the button is still shown: click only an enabled button, and let a click that
                    // loses that race go.
                    const btn = (await page.locator(tid('retry')).isVisible()) ? tid('retry') : tid('load');
                    const loc = page.locator(btn);
                    // (isEnabled waits for a button that is gone: the load that starts by itself
                    // removes it between the two checks, so a short wait, and gone is "no".)
                    const enabled = () => loc.isEnabled({ timeout: T(1000) }).catch(() => false);
                    if (await loc.isVisible() && await enabled()) {
                        clicked = true;
                        t.diagnostic(`state ${st}: clicking ${btn}`);
                        await loc.click({ timeout: T(5000) }).catch((e) => t.diagnostic(`click lost the race: ${e.message.split('\n')[0]}`));
                    }
                }
                await sleep(100);
            }
            await s.shot('redownloaded-ready');
            t.diagnostic(`notice: ${noticed || '(none with a recognisable word)'}`);
            const gets = (await server.log()).filter((e) => e.path === `/models/${fx.gguf}` && e.method === 'GET');
            assert.ok(gets.length > 0, 'the corrupted model was not downloaded again');
            assert.ok(noticed, 'no visible notice about the damaged model');
            const after = await storedSha(s, url);
            assert.equal(after.size, fx.size);
            assert.equal(after.sha256, want, 'the re-downloaded model differs from the original');

            // The record holds the SHA-256 and the fast checksum that reloads check. One written by
            // an older build (SHA-256 only) still loads without a download, and gains the fast one.
            const metaPath = [...after.entry.path.slice(0, -1), after.entry.path.at(-1).replace(/\.gguf$/, '.json')];
            const meta = JSON.parse(await retrying(() => opfsReadText(page, metaPath)));
            assert.equal(meta.sha256, want, 'the record has the wrong SHA-256');
            assert.match(String(meta.xxh3), /^[0-9a-f]{32}$/, `no fast checksum on record: ${JSON.stringify(meta)}`);
            const { xxh3, ...older } = meta;
            await opfsWriteText(page, metaPath, JSON.stringify(older));
            await server.clearLog();
            await page.goto(server.appUrl({ model: url, lang: 'en' }));
            await waitApp(page);
            await waitState(page, 'ready', { timeout: T(120000) });
            const regets = (await server.log()).filter((e) => e.path === `/models/${fx.gguf}` && e.method === 'GET');
            assert.deepEqual(regets, [], 'a record without the fast checksum made the app download again');
            await neutralPage(s);
            const completed = JSON.parse(await retrying(() => opfsReadText(page, metaPath)));
            assert.equal(completed.xxh3, xxh3, 'the fast checksum was not recorded again (or differs)');

            // "delete this model" frees the space: the store is empty afterwards
            await page.goto(server.appUrl({ model: url, lang: 'en' }));
            await waitApp(page);
            await waitState(page, 'ready', { timeout: T(120000) }); // the stored model loads by itself
            await page.locator('details.storage > summary').click();
            await page.locator(tid('delete-model')).first().click();
            const deadline2 = Date.now() + T(20000);
            let left;
            do {
                await sleep(200);
                left = await page.evaluate(() => window.ahmaDebug.cacheEntries());
            } while (left.length > 0 && Date.now() < deadline2);
            assert.deepEqual(left, [], 'the deleted model is still stored');
            await s.shot('deleted');
        });
    });
});

test('l. cancel keeps the stored part; the next download continues from it', { timeout: T(240000) }, async (t) => {
    await withServer(async (server) => {
        await withBrowser(t, { name: 'l-cancel', server }, async (s) => {
            const { page } = s;
            const fx = fixture(APP_MODEL);
            const url = server.modelUrl(fx.gguf);
            const modelPath = `/models/${fx.gguf}`;
            await page.goto(server.appUrl({ model: url, lang: 'en' }));
            await waitApp(page);
            await waitState(page, ['idle']);
            await waitModelChecked(s, modelPath);
            // slow enough to cancel half-way: the whole file would take ~20 s
            const bps = Math.ceil(fx.size / 20);
            await server.throttle(modelPath, bps);
            await page.locator(tid('load')).click();
            await waitState(page, 'downloading', { timeout: T(30000) });
            await page.waitForFunction((min) => (window.ahmaDebug.progress()?.bytes ?? 0) >= min,
                Math.floor(fx.size * 0.2), { timeout: T(60000), polling: 100 });
            await s.shot('downloading');
            const tCancel = Date.now();
            await page.locator(tid('cancel')).click();
            await waitState(page, 'idle', { timeout: T(10000), failOn: ['error', 'no-webgpu', 'ready'] });
            const cancelMs = Date.now() - tCancel;
            await s.shot('cancelled');
            const notice = (await page.locator('.notice').allInnerTexts()).join(' | ');
            t.diagnostic(`cancel took ${cancelMs} ms; notice: ${notice}`);
            assert.equal(await page.locator(tid('error')).count(), 0, 'cancel showed an error');
            const entries = await page.evaluate(() => window.ahmaDebug.cacheEntries());
            const part = entries.find((e) => e.url === url);
            assert.ok(part, `the stored part is gone after cancel: ${JSON.stringify(entries)}`);
            assert.equal(part.complete, false, 'a cancelled download counts as complete');
            assert.ok(part.stored > 0 && part.stored < fx.size, `stored ${part.stored} of ${fx.size}`);
            // the transfer stopped: the server saw the connection closed before the whole file went
            let open = null;
            const closeBy = Date.now() + T(5000);
            do {
                await sleep(200);
                open = (await server.log()).filter((e) => e.path === modelPath && e.method === 'GET' && e.status === 0);
            } while (open.length > 0 && Date.now() < closeBy);
            assert.deepEqual(open, [], 'the download went on after cancel');
            const sent = (await server.log()).filter((e) => e.path === modelPath && e.method === 'GET');
            assert.ok(sent.every((e) => e.bytes < fx.size), `the whole file was sent: ${JSON.stringify(sent)}`);
            assert.match(await page.locator(tid('load')).innerText(), /\S/);

            // go on: only the rest is fetched
            await server.throttle(modelPath, 0);
            await server.clearLog();
            await page.locator(tid('load')).click();
            await waitState(page, 'ready', { timeout: T(120000) });
            const gets = (await server.log()).filter((e) => e.path === modelPath && e.method === 'GET');
            t.diagnostic(`requests after cancel: ${JSON.stringify(gets.map((e) => [e.range, e.status]))}`);
            const resumed = gets.find((e) => /^bytes=(\d+)-$/.test(e.range ?? '') && e.status === 206);
            assert.ok(resumed, `no resuming Range request: ${JSON.stringify(gets)}`);
            const start = Number(/^bytes=(\d+)-/.exec(resumed.range)[1]);
            assert.ok(start > 0 && start <= part.stored, `resumed at ${start}, stored ${part.stored}`);
            const got = await storedSha(s, url);
            assert.equal(got.size, fx.size);
            assert.equal(got.sha256, sha256File(fx.file), 'the resumed model differs from the original');
        });
    });
});
