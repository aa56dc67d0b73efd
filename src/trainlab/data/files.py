"""Reading data files as text: UTF-8 checked (the error names the file, line and byte), and CSV
rows counted against the header, so a bad file is reported where it is bad."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import DataError


def read_utf8(path: str | Path) -> str:
    """The file's text (a UTF-8 byte-order mark dropped). DataError `path:line: not UTF-8 text
    (byte 0x.. at offset N)` for the first byte that is not UTF-8."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:{utf8_error_line(data, e)}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                        f"{e.start}); save the file as UTF-8") from None


def utf8_error_line(data: bytes, e: UnicodeDecodeError) -> int:
    return data.count(b"\n", 0, e.start) + 1


def csv_row_lines(text: str, path: str | Path) -> list[int]:
    """The line each data row of a CSV text starts on (a quoted field may span lines; blank lines
    are skipped, as pandas skips them). DataError naming the lines of rows whose number of fields
    is not the header's: pandas would fill a short row with missing values without a word."""
    reader = csv.reader(io.StringIO(text))
    header, lines, bad, end = None, [], [], 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = len(row)
                named = [c for c in row if c.strip()]
                twice = next((c for i, c in enumerate(named) if c in named[:i]), None)
                if twice is not None:  # pandas would rename the second one 'name.1' without a word
                    raise DataError(f"{path}:{start}: column {twice!r} appears twice in the header")
            elif len(row) != header:
                bad.append((start, len(row)))
            else:
                lines.append(start)
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not a readable CSV file ({e})") from None
    if bad:
        (line, n), more = bad[0], len(bad) - 1
        others = ""
        if more:
            shown = ", ".join(str(b[0]) for b in bad[1:6]) + (", ..." if more > 5 else "")
            others = f" (and {more} more row{'s' if more > 1 else ''}: lines {shown})"
        raise DataError(f"{path}:{line}: {n} field{'s' if n != 1 else ''}, the header has {header}{others}; "
                        "every row needs one value per column (leave a missing value empty: a,,c)")
    return lines
