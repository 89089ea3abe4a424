"""Reading archived Redis run logs: parse lines, recognise events, merge replicas, draw a timeline.

Offline only: nothing here talks to DCS. The record types live in :mod:`harvester.logs.model`.
"""
