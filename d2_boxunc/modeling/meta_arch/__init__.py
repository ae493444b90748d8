"""Meta-architectures (registered in detectron2's META_ARCH_REGISTRY on import)."""
