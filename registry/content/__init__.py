"""Content addressing and storage: Kubo-identical CIDs computed locally, CAR files, and stores.

Verification never takes a CID on trust from a remote node: ``unixfs.import_file`` recomputes it
from the bytes (with the SHA-256 and the size, in one pass), and every store verifies each block
against its CID before yielding a byte. Modules:

``unixfs``   streaming importer (profiles kubo-v0, kubo-v1, unixfs-v1-2025)
``cids``     parse / display / 36-byte on-chain form
``dagpb``    the dag-pb + UnixFS protobuf codec
``reader``   verified DAG walk (file bytes back out of blocks)
``car``      CAR v1 writer and verifying reader
``stores``   ContentStore protocol, ``open_store``; back-ends in ``local``, ``kubo``, ``gateway``,
             and the remote ``pinning`` service client
"""
