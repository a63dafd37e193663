"""Model access: load a causal LM (hub id, local folder, GGUF, the zoo), check it at load time,
and read its internals through one accessor layer (access.Subject) that hides architecture
differences (architectures: the table of families). Imports sinkbench.stats and sinkbench.errors only."""
