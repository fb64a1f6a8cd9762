"""What compare.sh and roundtrip.sh both need from a migration file: its text, whether psql may
run it inside one transaction (`psql -1`), and the name of its copy in a native pgkeel folder.
Imported by their inline Python through RW_LIB (this folder); standard library only."""
import re


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def strip_comments(sql):
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"--[^\n]*", " ", sql)


TXCTL = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|ROLLBACK)(\s+(TRANSACTION|WORK))?\s*;", re.I | re.M)
NOTX = re.compile(r"\bCONCURRENTLY\b|^\s*VACUUM\b|\bALTER\s+SYSTEM\b|^\s*(CREATE|DROP)\s+DATABASE\b|^\s*(CREATE|DROP)\s+TABLESPACE\b", re.I | re.M)


def psql_single(sql):
    """(1, "") when psql may run the file with -1; else (0, why): the file has its own
    transaction control, or a statement that cannot run in a transaction."""
    bare = strip_comments(sql)
    if TXCTL.search(bare):
        return 0, "file has its own BEGIN/COMMIT"
    if NOTX.search(bare):
        return 0, "statement that cannot run in a transaction"
    return 1, ""


def native_name(name, max_len=None):
    """The name part of a native pgkeel file: lowercased, runs of other characters to one _,
    cut to max_len when given."""
    n = re.sub(r"[^a-z0-9_]+", "_", name.lower())
    n = re.sub(r"_+", "_", n).strip("_")
    if max_len is not None:
        n = n[:max_len].rstrip("_")
    return n or "migration"
