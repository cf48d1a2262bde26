// Browser tests: the interface around the chat, no model needed. (k) on a phone-sized screen:
// nothing overflows sideways, the controls are reachable; settings persist across a reload and
// reset to the model card's defaults; conversations persist across a reload, delete with undo,
// and a deletion persists; the unsent draft survives a reload; the language toggle.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    T, tid, checkDist, startServer, withBrowser, waitApp, waitState, openSettings, closeSettings, setSetting,
    messages, sleep,
} from './helpers.mjs';

let server;
before(async () => {
    checkDist();
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

const PHONE = { width: 390, height: 844 };

/** Titles of the conversations in the list, top to bottom. */
const convTitles = (page) => page.evaluate(() =>
    [...document.querySelectorAll('[data-testid="conversation"] .conv-title')].map((b) => b.textContent.trim()));

/** Elements wider than the viewport or reaching past its right edge (by test id). */
async function overflow(page) {
    return page.evaluate(() => {
        const w = document.documentElement.clientWidth;
        const bad = [];
        if (document.documentElement.scrollWidth > w + 1) bad.push(`document ${document.documentElement.scrollWidth} > ${w}`);
        for (const el of document.querySelectorAll('[data-testid]')) {
            if (el.offsetParent === null) continue;
            const r = el.getBoundingClientRect();
            if (r.width > 0 && (r.right > w + 1 || r.left < -1)) bad.push(`${el.dataset.testid} ${Math.round(r.left)}..${Math.round(r.right)}`);
        }
        return bad;
    });
}

async function settingValue(page, name) {
    const el = page.locator(tid(`setting-${name}`));
    return (await el.getAttribute('type')) === 'checkbox' ? el.isChecked() : el.inputValue();
}

test('k. phone layout; settings, conversations and the draft persist; reset; delete with undo', { timeout: T(180000) }, async (t) => {
    await withBrowser(t, { name: 'k-ui', server, viewport: PHONE }, async (s) => {
        const { page } = s;
        await page.goto(server.appUrl({ lang: 'en' }));
        await waitApp(page);
        await waitState(page, ['idle']);

        // conversations: three, imported as a user's history would be
        for (const [title, q, a] of [
            ['Sää', 'Millainen sää huomenna on?', 'En tiedä säätä, mutta voin kertoa, miten sitä ennustetaan.'],
            ['Resepti', 'Anna resepti karjalanpiirakoihin.', '1. Keitä riisipuuro.\n2. Kauli ruiskuoret.'],
            ['Runo', 'Kirjoita runo syksystä.', 'Lehdet putoavat, sade laulaa.'],
        ]) {
            await page.evaluate((c) => window.ahmaDebug.importConversation(c),
                { title, messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] });
        }
        assert.deepEqual(await convTitles(page), ['Runo', 'Resepti', 'Sää']);
        assert.deepEqual((await messages(page)).map((m) => m.role), ['user', 'assistant']);

        // phone layout: nothing sticks out sideways; input, send, model picker and settings are usable
        assert.deepEqual(await overflow(page), [], 'elements overflow a 390 px wide screen');
        for (const id of ['chat-input', 'send', 'model-select', 'load', 'settings-toggle', 'lang-toggle', 'new-chat']) {
            const box = await page.locator(tid(id)).first().boundingBox();
            assert.ok(box && box.width > 0 && box.height > 0, `${id} is not visible on a phone`);
            assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width + 1, `${id} is outside the screen: ${JSON.stringify(box)}`);
            if (['send', 'load', 'settings-toggle', 'new-chat'].includes(id)) {
                assert.ok(box.height >= 24, `${id} is too small to tap (${box.height} px high)`);
            }
        }
        // the message box is on screen without scrolling (it sticks to the bottom)
        const composer = await page.locator(tid('chat-input')).boundingBox();
        assert.ok(composer.y + composer.height <= PHONE.height + 1,
            `the message box is below the fold: ${JSON.stringify(composer)}`);
        await s.shot('phone-chat');

        // every control has an accessible name
        const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select, textarea, summary, [role="button"]')]
            .filter((el) => el.offsetParent !== null || el.type === 'file')
            .filter((el) => {
                const byLabel = [...(el.labels ?? [])].map((l) => l.textContent.trim()).join('');
                const byRef = (el.getAttribute('aria-labelledby') ?? '').split(/\s+/).filter(Boolean)
                    .map((id) => document.getElementById(id)?.textContent.trim() ?? '').join('');
                const own = ['button', 'summary'].includes(el.tagName.toLowerCase()) ? el.textContent.trim() : '';
                return !(el.getAttribute('aria-label')?.trim() || byLabel || byRef || own || el.title?.trim());
            })
            .map((el) => el.outerHTML.slice(0, 120)));
        assert.deepEqual(unnamed, [], 'controls without an accessible name');

        // settings: change some, they survive a reload
        await openSettings(page);
        assert.deepEqual(await overflow(page), [], 'the settings panel overflows a phone screen');
        // opening it brings it on screen (on a phone it lies below the chat)
        await page.waitForFunction(() => {
            const r = document.querySelector('[data-testid="settings-panel"]').getBoundingClientRect();
            return r.top < innerHeight && r.bottom > 0;
        }, null, { timeout: T(5000) });
        await s.shot('phone-settings');
        const defaults = {};
        for (const k of ['system', 'temperature', 'top-k', 'repetition-penalty', 'min-length', 'max-tokens', 'do-sample']) {
            defaults[k] = await settingValue(page, k);
        }
        t.diagnostic(`defaults: ${JSON.stringify(defaults)}`);
        assert.equal(Number(defaults.temperature), 0.6);
        assert.equal(Number(defaults['top-k']), 4);
        assert.equal(Number(defaults['repetition-penalty']), 1.2);
        assert.equal(Number(defaults['min-length']), 5);
        assert.equal(Number(defaults['max-tokens']), 2048);
        assert.ok(defaults.system.length > 20, 'no default system prompt');
        const mine = { system: 'Olet lyhytsanainen testiavustaja.', temperature: '0.9', 'top-k': '12', 'do-sample': false };
        for (const [k, v] of Object.entries(mine)) await setSetting(page, k, v);
        await closeSettings(page);

        // an unsent draft
        await page.locator(tid('chat-input')).fill('keskeneräinen viesti');
        await sleep(300);

        await page.reload();
        await waitApp(page);
        await waitState(page, ['idle']);
        assert.deepEqual(await convTitles(page), ['Runo', 'Resepti', 'Sää'], 'conversations lost on reload');
        assert.equal(await page.locator(tid('chat-input')).inputValue(), 'keskeneräinen viesti', 'the draft was lost');
        await openSettings(page);
        for (const [k, v] of Object.entries(mine)) {
            assert.equal(await settingValue(page, k), v, `setting ${k} lost on reload`);
        }

        // out-of-range numbers are clamped to what the setting allows, a decimal comma is fine
        await setSetting(page, 'temperature', '9');
        assert.equal(await settingValue(page, 'temperature'), '5');
        await setSetting(page, 'max-tokens', '3');
        assert.equal(await settingValue(page, 'max-tokens'), '16');

        // reset to the model card's defaults, which also persists
        await page.locator(tid('settings-reset')).click();
        for (const [k, v] of Object.entries(defaults)) {
            assert.equal(await settingValue(page, k), v, `setting ${k} not reset`);
        }
        await page.reload();
        await waitApp(page);
        await openSettings(page);
        for (const [k, v] of Object.entries(defaults)) {
            assert.equal(await settingValue(page, k), v, `reset of ${k} did not persist`);
        }
        await closeSettings(page);

        // delete a conversation: it goes, undo brings it back where it was with its messages
        await page.locator(tid('conversation')).filter({ hasText: 'Resepti' }).locator('.conv-title').click();
        const before = await messages(page);
        await page.locator(tid('conversation')).filter({ hasText: 'Resepti' }).locator(tid('delete-conversation')).click();
        assert.deepEqual(await convTitles(page), ['Runo', 'Sää']);
        await page.locator(tid('deleted-notice')).waitFor({ state: 'visible', timeout: T(5000) });
        await s.shot('phone-deleted');
        await page.locator(tid('undo-delete')).click();
        assert.deepEqual(await convTitles(page), ['Runo', 'Resepti', 'Sää'], 'undo did not restore the conversation in place');
        assert.deepEqual(await messages(page), before, 'the restored conversation lost messages');
        assert.equal(await page.locator(tid('deleted-notice')).count(), 0);

        // delete for good: gone after a reload too
        await page.locator(tid('conversation')).filter({ hasText: 'Sää' }).locator(tid('delete-conversation')).click();
        await page.reload();
        await waitApp(page);
        assert.deepEqual(await convTitles(page), ['Runo', 'Resepti'], 'a deleted conversation came back after a reload');

        // language toggle: Finnish, and <html lang> follows
        await page.locator(tid('lang-toggle')).click();
        assert.equal(await page.evaluate(() => document.documentElement.lang), 'fi');
        assert.match(await page.locator(tid('new-chat')).innerText(), /Uusi keskustelu/);
        assert.deepEqual(await overflow(page), [], 'the Finnish texts overflow a phone screen');
        await s.shot('phone-finnish');
    });
});
