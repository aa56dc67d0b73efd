"""Writes python_docs.csv: docstrings of the Python standard library, each labelled with the chapter
of the Python Library Reference (docs.python.org/3/library) that documents its module.

A small, real English text-classification set that needs no download: `text` is the first
paragraph of a class, function, method or module docstring; `label` is one of seven chapters.
The committed CSV was made with CPython 3.11; other versions give slightly different rows.
Run from the repository root: python recipes/data/make_python_docs.py
"""
from __future__ import annotations

import csv
import importlib
import inspect
import pkgutil
import random
import re
import sys
import warnings
from pathlib import Path

CHAPTERS = {  # label -> top-level modules of that Library Reference chapter
    "internet_protocols": ["http", "urllib", "ftplib", "poplib", "imaplib", "smtplib", "socketserver", "xmlrpc",
                           "wsgiref", "ipaddress", "uuid"],
    "internet_data": ["email", "json", "mailbox", "mimetypes", "base64", "binascii", "quopri"],
    "networking_ipc": ["asyncio", "socket", "ssl", "select", "selectors", "signal", "mmap"],
    "concurrent_execution": ["threading", "multiprocessing", "concurrent", "subprocess", "sched", "queue",
                             "contextvars"],
    "tk_gui": ["tkinter"],
    "os_services": ["os", "io", "time", "argparse", "getopt", "logging", "getpass", "curses", "platform", "errno",
                    "ctypes"],
    "language_runtime": ["ast", "symtable", "token", "keyword", "tokenize", "tabnanny", "pyclbr", "py_compile",
                         "compileall", "dis", "pickletools", "sys", "sysconfig", "builtins", "warnings",
                         "dataclasses", "contextlib", "abc", "atexit", "traceback", "gc", "inspect", "site",
                         "importlib", "zipimport", "pkgutil", "modulefinder", "runpy"],
}
PER_LABEL = 450  # cap, so no chapter dominates
MAX_CHARS = 400


def first_paragraph(doc: str) -> str:
    para = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    text = " ".join(para.split())
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS].rsplit(" ", 1)[0]
    return text


def modules(top: str):
    try:
        mod = importlib.import_module(top)
    except BaseException:  # noqa: BLE001 - a module missing on this build (e.g. tkinter without Tk)
        return
    yield mod
    for info in pkgutil.walk_packages(getattr(mod, "__path__", []), top + "."):
        if "test" in info.name or "__main__" in info.name or "idle" in info.name:
            continue
        try:
            yield importlib.import_module(info.name)
        except BaseException:  # noqa: BLE001, S112 - some modules exit or fail on import
            continue


def docstrings(mod) -> list[str]:
    out = [p for p in re.split(r"\n\s*\n", inspect.getdoc(mod) or "")[:3]]
    for name, obj in sorted(vars(mod).items()):
        if getattr(obj, "__module__", None) != mod.__name__ or name.startswith("_"):
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            out.append(inspect.getdoc(obj) or "")
        if inspect.isclass(obj):
            for _, member in sorted(vars(obj).items()):
                if inspect.isfunction(member) and member.__doc__:
                    out.append(inspect.getdoc(member) or "")
    return out


def main(dest: Path) -> None:
    warnings.simplefilter("ignore")
    rng = random.Random(0)
    seen: set[str] = set()
    rows = []
    for label, tops in CHAPTERS.items():
        texts = []
        for top in tops:
            for mod in modules(top):
                for doc in docstrings(mod):
                    text = first_paragraph(doc)
                    if len(text) >= 30 and text not in seen:
                        seen.add(text)
                        texts.append(text)
        rng.shuffle(texts)
        rows += [(t, label) for t in texts[:PER_LABEL]]
        print(f"{label}: {min(len(texts), PER_LABEL)} of {len(texts)}", file=sys.stderr)
    rng.shuffle(rows)
    with open(dest, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {dest}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("python_docs.csv"))
