"""``--dry-run``: everything a run checks, and every record read, but nothing run or written.

The target and ``--init`` are imported, the output to resume is read, and
each record is read and decoded as a worker would; what would run is
counted, and the records that would get a ``MalformedRecord`` line are named
by their line numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from .job import record_value
from .options import EXIT_FAILURES, EXIT_OK, RunOptions
from .output import OutputScan
from .records import InputError, Record
from .targets import UsageError

# How many malformed records the summary names by line number.
NAMED_LINES = 5


def dry_run(options: RunOptions, records: Iterator[Record], earlier: OutputScan | None) -> int:
    """Read every record to run; say what a run would do; exit 0, or 1 if some are malformed."""
    count, malformed = 0, []
    try:
        for record in records:
            count += 1
            if record_value(record)[1] is not None:
                malformed.append(record[1])
    except InputError as error:
        raise UsageError(f"--input {options.input or '-'}: {error}") from None
    skipped = f" ({len(earlier.done)} done in {options.output} are skipped)" if earlier else ""
    named = ", ".join(map(str, malformed[:NAMED_LINES])) + (
        ", ..." if len(malformed) > NAMED_LINES else ""
    )
    bad = (
        f"; {len(malformed)} of them cannot be read (lines {named}) and would get "
        "MalformedRecord lines"
        if malformed
        else ""
    )
    print(
        f"minipool: dry run: {count} records would run{skipped}{bad}. {options.target}"
        f"{' and --init ' + options.init if options.init else ''} loaded. Nothing ran, "
        "nothing was written.",
        file=sys.stderr,
    )
    return EXIT_FAILURES if malformed else EXIT_OK
