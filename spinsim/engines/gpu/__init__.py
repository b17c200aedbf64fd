"""GPU engines: fused Triton kernels (:mod:`.triton`)."""
