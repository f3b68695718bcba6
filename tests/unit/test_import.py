"""`ctl operator import`: every row checked first, a bad row named by its line, all or nothing."""

from __future__ import annotations

import pytest

from ctl.config import Settings
from ctl.errors import ValidationError
from ctl.services.directory import ResultCodeSpec, add_operator, add_project, get_project, list_operators
from ctl.services.importing import import_operators, parse
from ctl.store.engine import Store

CALLS = Settings().calls
GOOD = ("extension,name,role,dial_string,projects\n"
        "110,Анна Петрова,operator,,Sales;Support\n"
        "\n"
        '111,"Boris, Jr.",supervisor,PJSIP/111,\n'
        "112,Clara,,,Support\n").encode()


@pytest.fixture
def directory(store: Store) -> Store:
    with store.transaction() as session:
        add_operator(session, CALLS, "101", "Existing", "operator", None)
        add_project(session, "Sales", "", [ResultCodeSpec("sale", "Sale", True)], ["101"])
        add_project(session, "Support", "", [], [])
    return store


def test_a_good_file_is_imported_whole(directory: Store) -> None:
    with directory.transaction() as session:
        result = import_operators(session, CALLS, b"\xef\xbb\xbf" + GOOD)  # a BOM, as spreadsheets write
    assert (result.added, result.memberships) == (3, 3)
    with directory.transaction() as session:
        people = {o.extension: (o.name, o.role, o.dial_string) for o in list_operators(session)}
        assert people["110"] == ("Анна Петрова", "operator", "PJSIP/110")
        assert people["111"] == ("Boris, Jr.", "supervisor", "PJSIP/111")
        assert people["112"] == ("Clara", "operator", "PJSIP/112")
        assert [m.extension for m in get_project(session, "Sales").members] == ["101", "110"]
        assert [m.extension for m in get_project(session, "Support").members] == ["110", "112"]


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty"),
    (b"extension,name\n", "a header but no rows"),
    (b"extension,fullname\n110,A\n", "line 1: unknown column 'fullname'"),
    (b"extension,role\n110,operator\n", "line 1: no 'name' column"),
    (b"extension,name,name\n110,A,B\n", "line 1: column 'name' given twice"),
    (b"extension,name\n110,A\n111\n", "line 3: 1 fields, the header has 2"),
    (b"extension,name,role\n110,A,operator\n111,B,king\n", "line 3: role: 'king' is not one of"),
    (b"extension,name\n110,A\nabc,B\n", "line 3: extension: 'abc' is not an extension"),
    (b"extension,name,dial_string\n110,A,\"PJSIP/1,30\"\n", "line 2: dial string"),
    (b"extension,name\n110,A\n111,\n", "line 3: name: must not be empty"),
    (b"extension,name\n110,A\n110,B\n", "line 3: extension 110 is also on line 2"),
    (b"extension,name\n110,A\n101,B\n", "line 3: operator 101 already exists"),
    (b"extension,name,projects\n110,A,Sales;Nope\n", "line 2: no project named 'Nope'"),
    (b"extension,name\n110,A\n111,\xff\xfe\n", "line 3: not UTF-8 text"),
    (b'extension,name\n110,"A\n', "line 2: not valid CSV"),
])
def test_a_bad_row_is_named_and_nothing_is_imported(directory: Store, content: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")), directory.transaction() as session:
        import_operators(session, CALLS, content)
    with directory.transaction() as session:
        assert [o.extension for o in list_operators(session)] == ["101"]
        assert [m.extension for m in get_project(session, "Sales").members] == ["101"]


def test_semicolon_files_and_size_limits() -> None:
    rows = parse(b"extension;name\n110;A\n", ";")
    assert [(r.line, r.extension, r.name, r.role) for r in rows] == [(2, "110", "A", "operator")]
    with pytest.raises(ValidationError, match="more than 10000 rows"):
        parse(b"extension,name\n" + b"".join(f"{1000 + i},P\n".encode() for i in range(10_001)))
