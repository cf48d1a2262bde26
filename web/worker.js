// The engine worker: the same wasm module as the page, started in a dedicated
// module worker so the GPU work, the download and the storage never block the UI.
import init, { worker_main } from './ahma_web.js';

await init();
worker_main();
