"""Applications built on the library: the synthetic sample scene, the YAML pipeline runner
and the quick-look picture."""
