"""The archive: the only package that writes below the archive root.

Modules, from names to whole-archive checks (each imports only those above it):

``paths``            where each file goes, and what a name below the root may be (pure)
``oserror``          an OSError as a one-line StorageError that keeps its cause
``locks``            flocks: files in progress, lock files, run locks
``files``            durable primitives: atomic replace, whole-line appends, tarballs, hashing
``part``             the payload (``.part``) writer, streamed with aiofiles
``ownership``        claiming the root, sweeping only our own leftovers
``store``            :class:`~harvester.archive.store.Archive`, the root every write goes through
``manifest``         the manifest entry and reading a folder's entries
``manifest_writer``  recording entries and keeping the sha256 list derived
``index``            which archive keys are archived (the re-hash-on-change trust rule)
``state``            pending days and the retention watermark
``verify``           checking files against manifests, and what of the damage can be repaired
``prune``            retention: what is old enough to delete, and deleting only that
"""
