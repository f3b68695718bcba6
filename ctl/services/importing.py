"""`ctl operator import FILE.csv`: many people at once, all or nothing.

Every row is checked before the first is written; a bad row is reported with its line
number (the header is line 1) and nothing is imported. Columns, by header name:
extension, name (required); role, dial_string, projects (optional; projects is a
`;`-separated list of existing project names: a person may belong to several).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl.config import CallSettings
from ctl.errors import CtlError, ValidationError
from ctl.services.directory import add_operator, get_project
from ctl.store.models import Operator, Project
from ctl.validation import check_extension, check_person_dial_string, check_role, check_text

REQUIRED = ("extension", "name")
OPTIONAL = ("role", "dial_string", "projects")
MAX_ROWS = 10_000
MAX_BYTES = 5_000_000


@dataclass(frozen=True)
class Row:
    line: int
    extension: str
    name: str
    role: str
    dial_string: str | None
    projects: tuple[str, ...]


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise ValidationError(f"the file is larger than {MAX_BYTES // 1_000_000} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # error.start counts from after the BOM (error.object); CR alone ends a line too, as for the rows.
        head = error.object[:error.start]
        line = head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1
        raise ValidationError(f"line {line}: not UTF-8 text") from None


def parse(data: bytes, delimiter: str = ",") -> list[Row]:
    """The file's rows, each checked on its own; raises on the first bad line."""
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise ValidationError("the file is empty: expected a header line (extension,name,role,dial_string,"
                                  "projects)")
        columns = [cell.strip().lower() for cell in header]
        unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
        if unknown:
            raise ValidationError(f"line 1: unknown column {unknown[0]!r} (known: {', '.join(REQUIRED + OPTIONAL)})")
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise ValidationError(f"line 1: no {missing[0]!r} column")
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise ValidationError(f"line 1: column {twice[0]!r} given twice")
        rows: list[Row] = []
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # blank lines are allowed
            if len(rows) >= MAX_ROWS:
                raise ValidationError(f"more than {MAX_ROWS} rows: split the file")
            if len(cells) != len(columns):
                raise ValidationError(f"line {line}: {len(cells)} fields, the header has {len(columns)}")
            rows.append(_row(line, dict(zip(columns, (c.strip() for c in cells), strict=True))))
    except csv.Error as error:
        raise ValidationError(f"line {reader.line_num}: not valid CSV ({error})") from None
    if not rows:
        raise ValidationError("the file has a header but no rows")
    return rows


def _row(line: int, values: dict[str, str]) -> Row:
    try:
        projects = tuple(p.strip() for p in values.get("projects", "").split(";") if p.strip())
        extension = check_extension(values["extension"])
        return Row(line, extension, check_text(values["name"], "name", 200),
                   check_role(values.get("role") or "operator"),
                   check_person_dial_string(values["dial_string"], extension) if values.get("dial_string") else None,
                   projects)
    except ValidationError as error:
        raise ValidationError(f"line {line}: {error}") from None


@dataclass(frozen=True)
class ImportResult:
    added: int
    memberships: int


def import_operators(session: Session, calls: CallSettings, data: bytes, delimiter: str = ",") -> ImportResult:
    """Check every row against the file and the store, then add them all (one transaction)."""
    rows = parse(data, delimiter)
    seen: dict[str, int] = {}
    for row in rows:
        if row.extension in seen:
            raise ValidationError(f"line {row.line}: extension {row.extension} is also on line {seen[row.extension]}")
        seen[row.extension] = row.line
    existing = set(session.scalars(select(Operator.extension).where(Operator.extension.in_(list(seen)))))
    projects: dict[str, Project] = {}
    for row in rows:
        if row.extension in existing:
            raise ValidationError(f"line {row.line}: operator {row.extension} already exists")
        for name in row.projects:
            if name not in projects:
                try:
                    projects[name] = get_project(session, name)
                except CtlError as error:
                    raise ValidationError(f"line {row.line}: {error}") from None
    memberships = 0
    for row in rows:
        person = add_operator(session, calls, row.extension, row.name, row.role, row.dial_string)
        for name in dict.fromkeys(row.projects):
            projects[name].members.append(person)
            memberships += 1
    session.flush()
    return ImportResult(len(rows), memberships)
