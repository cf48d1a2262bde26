// Browser tests: chat. (b) round trip through the UI: Enter sends, the answer streams, stop
// stops, regenerate gives a new answer, settings (do_sample) are used, new chat; (f) zero network
// requests while chatting; (g) an answer with <script>/<img onerror> renders inert.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    APP_MODEL, T, tid, checkDist, startServer, withBrowser, fixture, loadModel, waitApp, waitState, sleep,
    messages, lastAssistant, openSettings, closeSettings, setSetting, waitServiceWorker, networkRequests,
    sendAndStop, regenerateAndStop, commonPrefix, streamThenStop, traceMark,
} from './helpers.mjs';

let server;
before(async () => {
    checkDist();
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

async function setSettings(page, values) {
    await openSettings(page);
    for (const [k, v] of Object.entries(values)) await setSetting(page, k, v);
    await closeSettings(page);
}

const answerIds = (page) => page.evaluate(async () => Array.from(await window.ahmaDebug.lastAnswerIds()));

// Answers are bounded by `stop` (SwiftShader decodes a few tokens per second), and EOS is kept
// away by a large min length, so the random tiny model never ends an answer early. The length
// settings are set high: the app may count the prompt in them (as HF max_length does).
const LONG = { 'do-sample': true, temperature: 1.5, 'max-tokens': 2048, 'min-length': 2000 };

test('b. chat round trip: send, stream, stop, regenerate, settings, new chat', { timeout: T(300000) }, async (t) => {
    await withBrowser(t, { name: 'b-chat', server }, async (s) => {
        const { page } = s;
        await loadModel(s, server.modelUrl(fixture(APP_MODEL).gguf));
        const input = page.locator(tid('chat-input'));

        // Shift+Enter is a newline, not a send
        await input.fill('');
        await input.type('eka');
        await input.press('Shift+Enter');
        await input.type('toka');
        assert.equal(await input.inputValue(), 'eka\ntoka', 'Shift+Enter did not insert a newline');
        assert.equal((await messages(page)).length, 0, 'Shift+Enter sent the message');

        // send with Enter: a user message and a streamed assistant message; stop stops it
        await setSettings(page, LONG);
        const prompt = 'Kerro minulle pitkä tarina kissasta ja koirasta.';
        await input.fill(prompt);
        await input.press('Enter');
        await waitState(page, 'generating', { timeout: T(30000) });
        let ms = await messages(page);
        assert.equal(ms.length, 2, `want a user and an assistant message: ${JSON.stringify(ms)}`);
        assert.equal(ms[0].role, 'user');
        assert.equal(ms[0].text.trim(), prompt);
        assert.equal(ms[1].role, 'assistant');
        assert.equal(await input.inputValue(), '', 'the input was not cleared after sending');
        // streamed: the content grows in several steps while generating
        const lens = [];
        const deadline = Date.now() + T(90000);
        while (Date.now() < deadline && lens.filter((x) => x > 0).length < 4) {
            const len = (await lastAssistant(page)).length;
            if (lens[lens.length - 1] !== len) lens.push(len);
            const st = await page.evaluate(() => window.ahmaDebug.state());
            assert.equal(st, 'generating', `generation ended before it could be stopped (lengths ${lens})`);
            await sleep(30);
        }
        assert.ok(lens.filter((x) => x > 0).length >= 4, `the answer did not stream: lengths ${lens}`);
        await s.shot('streaming');
        const tStop = Date.now();
        await page.locator(tid('stop')).click();
        await waitState(page, 'ready', { timeout: T(3000) });
        const stopMs = Date.now() - tStop;
        const stopped = await lastAssistant(page);
        const stoppedIds = await answerIds(page);
        await sleep(1500);
        assert.equal(await lastAssistant(page), stopped, 'tokens kept arriving after stop');
        assert.deepEqual(await answerIds(page), stoppedIds);
        assert.equal(await page.evaluate(() => window.ahmaDebug.state()), 'ready');
        assert.ok(stoppedIds.length > 0, 'lastAnswerIds() is empty after a stopped answer');
        t.diagnostic(`stopped after ${stoppedIds.length} tokens, ready ${stopMs} ms after the click`);
        await s.shot('stopped');

        // regenerate (sampling): a new answer replaces the last one; two sampled answers differ
        const nBefore = (await messages(page)).length;
        const r1 = await regenerateAndStop(page, { steps: 5 });
        assert.ok(r1.text.length > 0, 'regenerate gave an empty answer');
        ms = await messages(page);
        assert.deepEqual(ms.map((m) => m.role), ['user', 'assistant'], 'regenerate should replace the last answer');
        assert.equal(ms.length, nBefore);
        const r2 = await regenerateAndStop(page, { steps: 5 });
        const m12 = Math.min(r1.ids.length, r2.ids.length);
        assert.ok(m12 >= 3, `answers too short to compare: ${r1.ids.length}, ${r2.ids.length}`);
        assert.ok(commonPrefix(r1.ids, r2.ids) < m12,
            `two sampled answers agree on their first ${m12} ids (${r1.ids}, ${r2.ids}): do_sample/temperature not used?`);
        await s.shot('regenerated');

        // do_sample off: greedy, so regenerating gives the same ids
        await setSettings(page, { 'do-sample': false });
        const g1 = await regenerateAndStop(page, { steps: 5 });
        const g2 = await regenerateAndStop(page, { steps: 5 });
        const mg = Math.min(g1.ids.length, g2.ids.length);
        assert.ok(mg >= 3, `greedy answers too short to compare: ${g1.ids.length}, ${g2.ids.length}`);
        assert.equal(commonPrefix(g1.ids, g2.ids), mg,
            `greedy (do_sample off) answers differ: ${g1.ids} vs ${g2.ids}: the setting was not used`);
        t.diagnostic(`greedy answer ids ${g1.ids.slice(0, 8)}…: ${JSON.stringify(g1.text.slice(0, 60))}`);

        // a second turn in the same conversation
        const turn2 = await sendAndStop(page, 'Entä sitten?', { steps: 3 });
        assert.ok(turn2.text.length > 0, 'empty answer in the second turn');
        ms = await messages(page);
        assert.deepEqual(ms.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);
        await s.shot('two-turns');
        const stats = await page.locator(tid('stats')).evaluate((e) => ({ ...e.dataset }));
        t.diagnostic(`stats: ${JSON.stringify(stats)}`);
        const num = (k) => Number(stats[k]);
        assert.ok(num('decodeTps') > 0 && num('prefillTps') > 0, `stats without speeds: ${JSON.stringify(stats)}`);
        assert.ok(num('ctxUsed') > 0 && num('ctxMax') >= num('ctxUsed'), `stats without context use: ${JSON.stringify(stats)}`);

        // copy an answer: the clipboard gets the answer's text (and nothing throws)
        await s.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
        // (the stored raw answer: the page shows it rendered as Markdown)
        const lastText = await page.evaluate(() =>
            JSON.parse(localStorage.getItem('ahma.conversations.v1'))[0].messages.at(-1).content);
        await page.locator(tid('copy')).last().click();
        const copied = await page.evaluate(() => navigator.clipboard.readText().catch((e) => `(unreadable: ${e})`));
        if (copied.startsWith('(unreadable')) t.diagnostic(`clipboard ${copied}`);
        else assert.equal(copied, lastText, 'copy did not put the answer on the clipboard');

        // edit the first user message and resend: everything after it is replaced by a new answer
        await page.locator(tid('edit')).first().click();
        const edited = 'Kerro lyhyt tarina.';
        await page.locator(tid('edit-input')).fill(edited);
        const markEdit = await traceMark(page);
        await page.locator(tid('edit-send')).click();
        const re = await streamThenStop(page, { mark: markEdit, steps: 3 });
        assert.ok(re.text.length > 0, 'no answer after edit and resend');
        ms = await messages(page);
        assert.deepEqual(ms.map((m) => m.role), ['user', 'assistant'], 'edit and resend should drop the later turns');
        assert.equal(ms[0].text.trim(), edited, 'the edited message was not resent');
        await s.shot('edited');

        // new chat: an empty conversation that works
        await page.locator(tid('new-chat')).click();
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="message"]').length === 0, null,
            { timeout: T(5000) });
        const fresh = await sendAndStop(page, 'Hei!', { steps: 2 });
        assert.ok(fresh.text.length > 0);
        assert.deepEqual((await messages(page)).map((m) => m.role), ['user', 'assistant']);
        await s.shot('new-chat');
    });
});

test('f. zero network requests while chatting', { timeout: T(180000) }, async (t) => {
    await withBrowser(t, { name: 'f-zero-network', server }, async (s) => {
        const { page } = s;
        await loadModel(s, server.modelUrl(fixture(APP_MODEL).gguf));
        await waitServiceWorker(page);
        await page.waitForLoadState('networkidle');
        await setSettings(page, LONG);
        await sleep(1000);
        await server.clearLog();
        s.requests.length = 0;
        const a = await sendAndStop(page, 'Mikä on Suomen pääkaupunki?', { steps: 6 });
        const b = await sendAndStop(page, 'Kiitos!', { steps: 3 });
        await sleep(500);
        const log = networkRequests(await server.log(), 'path');
        const reqs = networkRequests(s.requests);
        t.diagnostic(`answers of ${a.ids.length} and ${b.ids.length} tokens`);
        assert.ok(a.text.length > 0 && b.text.length > 0);
        assert.deepEqual(log, [], `the server saw requests during chat: ${JSON.stringify(log)}`);
        assert.deepEqual(reqs.map((r) => `${r.method} ${r.url}`), [], 'the page/workers made requests during chat');
    });
});

test('g. <script> and <img onerror> in messages render inert', { timeout: T(120000) }, async (t) => {
    await withBrowser(t, { name: 'g-xss', server }, async (s) => {
        const { page } = s;
        await page.goto(server.appUrl({ lang: 'en' }));
        await waitApp(page);
        await waitState(page, ['idle', 'ready']);
        const payload = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';
        const title = '<img src=x onerror="window.__pwned=3">';
        await page.evaluate(({ payload, title }) => window.ahmaDebug.importConversation({
            title,
            messages: [
                { role: 'user', content: payload },
                { role: 'assistant', content: `Tässä: ${payload}\n\n**lihavoitu** ja \`${payload}\`` },
            ],
        }), { payload, title });
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="message"]').length >= 2, null,
            { timeout: T(10000) });
        await sleep(1000);
        const ms = await messages(page);
        assert.equal(ms.length, 2);
        assert.equal(ms[0].role, 'user');
        assert.equal(ms[1].role, 'assistant');
        assert.ok(ms[0].text.includes(payload), `user message not shown literally: ${ms[0].text}`);
        assert.ok(ms[1].text.includes('<script>window.__pwned=1</script>'), `assistant message lost the <script> text: ${ms[1].text}`);
        assert.ok(ms[1].text.includes('<img src=x onerror="window.__pwned=2">'), `assistant message lost the <img> text: ${ms[1].text}`);
        const found = await page.evaluate(() => ({
            inMessages: document.querySelectorAll('[data-testid="message"] script, [data-testid="message"] img, [data-testid="message"] iframe, [data-testid="message"] [onerror]').length,
            anywhere: document.querySelectorAll('img[src="x"], [onerror]').length,
            scripts: [...document.scripts].filter((x) => x.textContent.includes('__pwned')).length,
            pwned: window.__pwned,
        }));
        assert.deepEqual(found, { inMessages: 0, anywhere: 0, scripts: 0, pwned: undefined });
        await s.shot('xss-inert');
    });
});

test('p. old turns that no longer fit are dropped from the prompt, with a notice; the chat keeps them', { timeout: T(240000) }, async (t) => {
    await withBrowser(t, { name: 'p-dropped', server }, async (s) => {
        const { page } = s;
        await loadModel(s, server.modelUrl(fixture(APP_MODEL).gguf));
        // a short context: max_length 200 leaves ~150 tokens for the prompt
        await setSettings(page, { 'max-tokens': 200, 'do-sample': false, system: 'Olet avustaja.' });
        const long = (i) => `Tämä on viesti numero ${i}. ` + 'Kerron pitkästi kesästä, järvestä ja saunasta. '.repeat(4);
        const history = [];
        for (let i = 1; i <= 4; i++) {
            history.push({ role: 'user', content: long(i) }, { role: 'assistant', content: `Vastaus ${i}: kiitos, ymmärrän.` });
        }
        await page.evaluate((m) => window.ahmaDebug.importConversation({ title: 'Pitkä', messages: m }), history);
        assert.equal(await page.locator(tid('dropped-notice')).count(), 0, 'a notice before anything was dropped');
        const a = await sendAndStop(page, 'Mistä puhuimme ensin?', { steps: 2 });
        assert.ok(a.text.length > 0, 'no answer');
        const notice = page.locator(tid('dropped-notice'));
        await notice.waitFor({ state: 'visible', timeout: T(5000) });
        const text = (await notice.innerText()).trim();
        t.diagnostic(`notice: ${text}`);
        const n = Number(/^(\d+)/.exec(text)?.[1]);
        assert.ok(n >= 2 && n <= 8, `the notice does not say how many messages were dropped: "${text}"`);
        const ms = await messages(page);
        assert.equal(ms.length, 10, 'the dropped messages disappeared from the conversation');
        const stats = await page.locator(tid('stats')).evaluate((e) => ({ ...e.dataset }));
        assert.ok(Number(stats.ctxUsed) <= 200, `context used ${stats.ctxUsed} exceeds max_length 200`);
        assert.equal(Number(stats.ctxMax), 200, 'the stats do not show the max_length in effect');
        await s.shot('dropped-notice');
    });
});
