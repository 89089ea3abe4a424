"""The harvester's configuration: one schema, read from YAML, resolved into settings.

``schema`` (the pydantic models that are the settings), ``load`` (YAML file -> Settings, errors
as one line naming the key path), ``credentials`` (environment and clouds.yaml), ``regions``
(endpoints and the download host policy), ``describe`` (what ``validate`` prints), ``emulated``
(settings aimed at a running emulator), ``yamlfile`` and ``safetext`` (bounded reading, and what
of a file may be quoted). Import from those modules; this package re-exports nothing.
"""
