"""The run: the pytest plugin (options, parametrization, fixtures, terminal summary), the
session's model cache (bench), start-up checks (preflight), the command line (cli), the unit
skeleton, and the drivers that calibrate every registered unit's verdicts under nulls
(calibration, hostile). The top layer: it may import everything, nothing imports it."""
