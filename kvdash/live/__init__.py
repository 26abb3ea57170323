"""Live run: a small KV-cached transformer on the attached GPU (CPU when none), measured next to
kvdash's predictions. The only part of kvdash that imports torch, and only in its submodules."""
