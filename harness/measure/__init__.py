"""Passes and measurements: run a model with edits (interventions), the spectral bands
(spectrum), the filter grid (sweep), attention readouts and sink metrics (metrics), the dark
write and the sink profile shared by H4-A and H7 (designate, sink_profile), the text and its
windows (data), the settings every measurement is configured by (config), and saved passes
(checkpoint, progress). Imports sinkbench.model, sinkbench.stats and sinkbench.errors."""
