"""Nothing to configure here: sinkbench's pytest options (--model, --layers, ...), the
parametrization of hypotheses/ and its fixtures live in harness/run/plugin.py (installed as
sinkbench.run.plugin), which pytest loads through the `pytest11` entry point of the installed
package (`bash .ci/setup` installs this checkout in editable mode). Listing it here as well,
in pytest_plugins, would register it twice."""
