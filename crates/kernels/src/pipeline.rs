//! The pipeline cache: [`KernelKey`] → compiled `wgpu::ComputePipeline`.

use std::sync::Arc;

use crate::context::GpuContext;
use crate::error::KernelError;
use crate::key::KernelKey;
use crate::registry;

impl GpuContext {
    /// Returns the pipeline for `key`, compiling it on first use.
    ///
    /// The source is preprocessed with the key's defines, and the shader module and pipeline are
    /// created inside a validation error scope, so a bad variant comes back as
    /// [`KernelError::ShaderCompile`] carrying the pipeline label and the compiler's message
    /// rather than reaching the uncaptured-error handler. Pipelines use the automatic layout; ops
    /// get their bind-group layout with `pipeline.get_bind_group_layout(0)`.
    pub async fn pipeline(
        &self,
        key: &KernelKey,
    ) -> Result<Arc<wgpu::ComputePipeline>, KernelError> {
        if let Some(p) = self.pipelines.lock().map_err(poisoned)?.get(key) {
            return Ok(p.clone());
        }
        let label = key.to_string();
        let source = registry::wgsl(key, self.is_browser())?;
        let device = self.device();
        let oom_scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        let c = self.shader_checks();
        let module = if c != crate::ShaderChecks::all() && !self.is_browser() {
            let mut checks = wgpu::ShaderRuntimeChecks::checked();
            checks.bounds_checks = c.bounds;
            checks.force_loop_bounding = c.loop_bounding;
            checks.int_div_checks = c.int_division;
            // SAFETY: the WGSL is still validated. What each left-out check relies on instead
            // is documented on `ShaderChecks`: every loop of our kernels terminates, divisors
            // come from validated shapes, and indices from the kernels' own arithmetic (buffer
            // accesses also from the driver's robust buffer access).
            unsafe { device.create_shader_module_trusted(desc, checks) }
        } else {
            device.create_shader_module(desc)
        };
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        let validation = scope.pop().await;
        let oom = oom_scope.pop().await;
        if let Some(err) = validation {
            let message = match err {
                wgpu::Error::Validation { description, .. } => description,
                other => other.to_string(),
            };
            return Err(KernelError::ShaderCompile { label, message });
        }
        if let Some(err) = oom {
            return Err(KernelError::from_wgpu(err));
        }
        self.check()?;
        let pipeline = Arc::new(pipeline);
        self.pipelines
            .lock()
            .map_err(poisoned)?
            .insert(key.clone(), pipeline.clone());
        Ok(pipeline)
    }

    /// Number of pipelines compiled so far (for tests and diagnostics).
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }
}

fn poisoned<T>(_: T) -> KernelError {
    KernelError::Gpu("pipeline cache lock poisoned".into())
}
