//! Reading a buffer back to the CPU on both targets: `map_async` resolves a
//! small future; natively we drive it with a blocking `poll`, in the browser
//! the event loop does.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use ahma_kernels::GpuContext;

use crate::EngineError;

/// A one-shot slot a wgpu callback fills and a future awaits.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

struct SlotFuture<T>(Arc<Mutex<Slot<T>>>);

impl<T> Future for SlotFuture<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn slot<T: Send + 'static>() -> (SlotFuture<T>, impl FnOnce(T) + Send + 'static) {
    let s = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let s2 = s.clone();
    let fill = move |v: T| {
        let mut g = s2.lock().unwrap_or_else(|e| e.into_inner());
        g.value = Some(v);
        if let Some(w) = g.waker.take() {
            w.wake();
        }
    };
    (SlotFuture(s), fill)
}

/// Blocks natively until submitted work is done (a no-op in the browser).
pub(crate) fn poll_wait(ctx: &GpuContext) -> Result<(), EngineError> {
    poll_wait_for(ctx, None)
}

/// Blocks natively until submission `index` (or, with `None`, all submitted work) is done; a
/// no-op in the browser, where callbacks fire from the event loop.
fn poll_wait_for(
    ctx: &GpuContext,
    index: Option<wgpu::SubmissionIndex>,
) -> Result<(), EngineError> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        ctx.device()
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: None,
            })
            .map_err(|e| EngineError::DeviceLost(format!("waiting for the GPU failed: {e}")))?;
    }
    #[cfg(target_arch = "wasm32")]
    let _ = (ctx, index);
    Ok(())
}

/// Waits until every submitted command buffer has finished.
pub(crate) async fn wait_idle(ctx: &GpuContext) -> Result<(), EngineError> {
    let (fut, fill) = slot::<()>();
    ctx.queue().on_submitted_work_done(move || fill(()));
    poll_wait(ctx)?;
    fut.await;
    ctx.check()?;
    Ok(())
}

/// Copies the whole of `buf` (which must be MAP_READ) to the CPU.
pub(crate) async fn read_buffer(
    ctx: &GpuContext,
    buf: &wgpu::Buffer,
) -> Result<Vec<u8>, EngineError> {
    read_buffer_after(ctx, buf, None).await
}

/// [`read_buffer`] for a buffer last written by submission `after`: natively it waits for that
/// submission only, so work submitted later (the next decode step) keeps the GPU busy meanwhile.
pub(crate) async fn read_buffer_after(
    ctx: &GpuContext,
    buf: &wgpu::Buffer,
    after: Option<wgpu::SubmissionIndex>,
) -> Result<Vec<u8>, EngineError> {
    let (fut, fill) = slot::<Result<(), wgpu::BufferAsyncError>>();
    buf.slice(..).map_async(wgpu::MapMode::Read, fill);
    poll_wait_for(ctx, after)?;
    if let Err(e) = fut.await {
        ctx.check()?;
        return Err(EngineError::DeviceLost(format!(
            "reading back a buffer failed: {e}"
        )));
    }
    let bytes = buf
        .slice(..)
        .get_mapped_range()
        .map_err(|e| EngineError::DeviceLost(format!("mapping a readback buffer failed: {e}")))?
        .to_vec();
    buf.unmap();
    ctx.check()?;
    Ok(bytes)
}
