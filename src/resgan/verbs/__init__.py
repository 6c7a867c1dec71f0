"""The request layer: one way in for every verb, whatever the entry point.

Each verb has one typed request whose options are checked once (types, ranges, what the task
allows), one function that does the work and returns results or raises ``ResganError``, and one
place that writes files. ``resgan.cli``, ``resgan.api`` and ``resgan.serve`` only translate
arguments in and results / errors out, so the three accept, refuse and decode exactly alike.

- :mod:`.options`: the type and range checks every request uses;
- :mod:`.seeds`: the one seed parser (one limit, counted before anything is listed);
- :mod:`.models`: models loaded by source (built-in name, run directory, file), kept between calls;
- :mod:`.restore` (+ :mod:`.restore_files`), :mod:`.generate`, :mod:`.evaluate`, :mod:`.export`.

Layers, each importing only those below it: core (config, checkpoint, data, imageio, metrics) <
tasks (gan/, restore/, zoo) < this layer < entry points (cli, api, serve).
"""
