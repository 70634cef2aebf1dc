"""What to tell a user when a command stops half way: what is done, what is not, what to run next.

A publish has one commit point, the chain transaction. Whatever stops it (the local chain dying, a
full disk), the message says on which side of that point it stopped and gives the command that
finishes the job safely: re-running the same ``registry publish`` never publishes twice, it finds
the release on chain and only writes what is missing.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Sequence

from registry.errors import RegistryError, StorageError, UnreachableError


def manifest_not_written(exc: StorageError, ref: str, transaction: str | None, manifest_path: Path) -> StorageError:
    """The chain part succeeded, the manifest could not be written (disk full…)."""
    cause = exc.__cause__
    from registry.fsutil import storage_error

    folder = manifest_path.parent
    if isinstance(cause, OSError):
        line = str(storage_error(cause, "manifest directory", folder))
    else:
        line = f"cannot write the manifest into manifest directory {folder}: {exc}"
    where = f" (transaction {transaction})" if transaction else ""
    return StorageError(
        f"{line}: {ref} IS published on chain{where}, only its manifest {manifest_path.name} is missing; "
        f"free space, then run the same `registry publish` again to rewrite it (it will not publish twice)"
    )


def rerun_command(argv: Sequence[str] | None = None) -> str:
    """The command line that was run, as something to paste back into a shell."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["registry", *args])


def publish_interrupted(exc: RegistryError, ref: str, local_chain: bool, argv: Sequence[str] | None = None
                        ) -> RegistryError:
    """A publish cut off because the chain went away: say so, whether it may have landed, and
    the command that completes it. Other errors are returned unchanged."""
    if not isinstance(exc, UnreachableError):
        return exc
    from registry.chain.tx import TransactionInterrupted

    again = rerun_command(argv)
    if isinstance(exc, TransactionInterrupted):
        head = f"publishing {ref} was interrupted: {exc}"
    elif local_chain:
        head = (f"the local chain stopped answering while publishing {ref} ({exc}); whether {ref} is on chain is "
                "not known until it is back")
    else:
        return exc
    if local_chain:
        tail = (f"run `{again}` to complete the publish: it restarts the local chain from its last saved state "
                "and publishes once (or only writes the manifest if the release is already on chain)")
    else:
        tail = f"run `{again}` when the node answers again: it completes the publish without publishing twice"
    error = type(exc)(f"{head}. {tail}") if not isinstance(exc, TransactionInterrupted) else \
        TransactionInterrupted(f"{head}. {tail}", exc.phase, exc.tx_hash, exc.chain_died)
    return error
