// Precondition of every other browser test: the system Chromium, as the harness launches it,
// has a WebGPU adapter (SwiftShader) in the page and in a dedicated worker, and runs a compute
// shader. Without one the suite fails here, loudly, instead of skipping.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { T, checkDist, startServer, withBrowser } from './helpers.mjs';

let server;
before(async () => {
    checkDist();
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

const PROBE = async () => {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) return { adapter: false };
    const device = await adapter.requestDevice();
    const module = device.createShaderModule({
        code: `@group(0) @binding(0) var<storage, read_write> b: array<u32>;
               @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) i: vec3u) { b[i.x] = i.x * 3u + 1u; }`,
    });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const buf = device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const read = device.createBuffer({ size: 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(buf, 0, read, 0, 256);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const out = Array.from(new Uint32Array(read.getMappedRange()).slice(0, 4));
    return {
        adapter: true,
        info: { vendor: adapter.info?.vendor, architecture: adapter.info?.architecture },
        f16: adapter.features.has('shader-f16'),
        maxStorage: adapter.limits.maxStorageBufferBindingSize,
        out,
    };
};

test('0. Chromium has a WebGPU adapter (SwiftShader) in the page and in a worker', { timeout: T(90000) }, async (t) => {
    await withBrowser(t, { name: '0-webgpu', server }, async (s) => {
        const { page } = s;
        // the app's origin (a secure context); the app itself is not needed here
        await page.goto(`${server.origin}/models/kquant_gqa.json`);
        const inPage = await page.evaluate(PROBE);
        t.diagnostic(`page: ${JSON.stringify(inPage)}`);
        assert.ok(inPage.adapter, 'no WebGPU adapter in the page: Chromium/SwiftShader setup is broken');
        assert.deepEqual(inPage.out, [1, 4, 7, 10]);
        const inWorker = await page.evaluate(async (src) => {
            const blob = new Blob([`onmessage = async () => postMessage(await (${src})());`], { type: 'text/javascript' });
            const w = new Worker(URL.createObjectURL(blob));
            return new Promise((resolve, reject) => {
                w.onmessage = (e) => resolve(e.data);
                w.onerror = (e) => reject(new Error(e.message));
                w.postMessage(0);
            });
        }, PROBE.toString());
        t.diagnostic(`worker: ${JSON.stringify(inWorker)}`);
        assert.ok(inWorker.adapter, 'no WebGPU adapter in a dedicated worker');
        assert.deepEqual(inWorker.out, [1, 4, 7, 10]);
    });
});
