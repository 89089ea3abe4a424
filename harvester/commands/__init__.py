"""One module per command; ``harvester.cli`` parses the arguments and calls its ``main``.

    run.py       harvester run: the nightly harvest (pending.py: its ledger of needed days)
    collect.py   harvester collect: an incident bundle, now
    verify.py    harvester verify [--repair]
    prune.py     harvester prune
    validate.py  harvester validate [--check] (doctor.py: the probes), harvester config-schema
    finish.py    what a harvesting command does after its work: records, summary, problems

The offline readers (``logs``, ``events``, ``timeline``) live in :mod:`harvester.logs` for now.
"""
