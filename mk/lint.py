"""The project's own source checks (`make lint`, part of `make check`), in the
manner of curl's checksrc: what clang-format cannot see.

  - every C file opens with a comment saying what it is for;
  - no strcpy, strcat, sprintf, vsprintf, gets or stpcpy (snprintf, memcpy
    with a length, or the errbuf helpers instead);
  - nothing we define (a macro, an enumerator, a typedef) is in a namespace
    the C library or POSIX reserves: _X and __x, S_ (<sys/stat.h>), E + a
    digit or capital with no underscore (an errno name of <errno.h>),
    SIG (<signal.h>), LC_ (<locale.h>), PRI/SCN (<inttypes.h>), *_t types;
  - in client/ and fs/, time goes through client/clock.h: no
    pthread_cond_init, pthread_cond_timedwait or CLOCK_REALTIME elsewhere
    (every condition waits on the monotonic clock);
  - inode arithmetic (INO_THR_STEP_BASE, INO_SCRIPT_VERSION_BASE,
    INO_BY_STATUS_FIRST) only behind the helpers of fs/ino.h;
  - a layer includes only its own headers and those of the layers below it
    (client/ nothing of client/cli/ or fs/, and no FUSE header);
  - in client/ and fs/, no file over 1,200 lines and no function over
    120, except the files listed in DEBT below, which may not grow past
    the length recorded there (the list only shrinks).

    /usr/bin/python3 mk/lint.py        # from the top of the tree
"""

import os
import re
import sys

ROOTS = ["client", "fs", "tests/emulator", "tests/unit", "tests/fuzz", "bench"]
MAX_FILE_LINES = 1200
MAX_FUNCTION_LINES = 120
# files over MAX_FILE_LINES today, and the most lines each may have until
# it is split (issue 14)
DEBT = {
    "fs/payload.c": 1851,
    "fs/tree.c": 1541,
}
# the sizes are checked where the rule is (fs/ and client/)
SIZED = ("client/", "fs/")
CLOCKED = re.compile(r"\b(pthread_cond_init|pthread_cond_timedwait|CLOCK_REALTIME)\b")
CLOCK_HOME = ("client/clock.c", "client/clock.h")
INO_MATH = re.compile(r"\b(INO_THR_STEP_BASE|INO_SCRIPT_VERSION_BASE|INO_BY_STATUS_FIRST)\b")
BANNED = re.compile(r"\b(strcpy|strcat|sprintf|vsprintf|gets|stpcpy)\s*\(")
RESERVED = re.compile(r"^(_[A-Z_]|__|S_[A-Z]|E[0-9A-Z][0-9A-Z]*$|SIG_?[A-Z]|LC_[A-Z]|PRI[a-zX]"
                      r"|SCN[a-zX])")
RESERVED_OK = re.compile(r"^(_GNU_SOURCE|_POSIX_C_SOURCE|_DEFAULT_SOURCE|_FILE_OFFSET_BITS)$")
# which directories' headers a directory's files may include ("" = itself)
LAYERS = {
    "client": ["client"],
    "client/cli": ["client/cli", "client"],
    "fs": ["fs", "client"],
    "tests/emulator": ["tests/emulator"],
}
NO_FUSE = ("client", "client/cli")


def strip(text):
    """text with comments, string and character literals blanked (lines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def defined_names(code):
    """(name, line) of the macros, enumerators and typedefs code defines."""
    for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)", code, re.M):
        yield m.group(1), code.count("\n", 0, m.start()) + 1
    for m in re.finditer(r"\benum\b[^{;()]*\{([^}]*)\}", code):
        base = m.start(1)
        for e in re.finditer(r"(?:^|,)\s*([A-Za-z_]\w*)", m.group(1)):
            yield e.group(1), code.count("\n", 0, base + e.start(1)) + 1
    for m in re.finditer(r"\btypedef\b[^;]*?\b([A-Za-z_]\w*)\s*;", code):
        yield m.group(1), code.count("\n", 0, m.start(1)) + 1


def functions(lines):
    """(name, first line, length) of each function definition: a name at
    the start of a line, then a line that is only '{', to the line that is
    only '}' (the layout .clang-format gives)."""
    for i, ln in enumerate(lines):
        m = re.match(r"([A-Za-z_]\w*)\(", ln)
        if not m:
            continue
        j = i
        while j < len(lines) and lines[j] != "{" and not lines[j].rstrip().endswith(";"):
            j += 1
        if j >= len(lines) or lines[j] != "{":
            continue
        k = j + 1
        while k < len(lines) and lines[k] != "}":
            k += 1
        yield m.group(1), i + 1, k - i + 1


def check_file(path, problems):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    lines = text.split("\n")
    if not text.startswith("/*"):
        problems.append(f"{path}:1: does not open with a comment saying what it is for")
    code = strip(text)
    for n, ln in enumerate(code.split("\n"), 1):
        m = BANNED.search(ln)
        if m:
            problems.append(f"{path}:{n}: {m.group(1)}() (use snprintf or a length)")
    if path.startswith(("client/", "fs/")) and path not in CLOCK_HOME:
        for n, ln in enumerate(code.split("\n"), 1):
            m = CLOCKED.search(ln)
            if m:
                problems.append(f"{path}:{n}: {m.group(1)} (use clock.h: clk_cond_init, "
                                "clk_cond_wait_until, clk_wall_ms)")
    if path.startswith("fs/") and path != "fs/ino.h":
        for n, ln in enumerate(code.split("\n"), 1):
            m = INO_MATH.search(ln)
            if m:
                problems.append(f"{path}:{n}: {m.group(1)} (use the helpers of ino.h)")
    for name, n in defined_names(code):
        if (RESERVED.match(name) or name.endswith("_t")) and not RESERVED_OK.match(name):
            problems.append(f"{path}:{n}: {name} is in a reserved namespace")
    d = os.path.dirname(path)
    if d in LAYERS:
        for n, ln in enumerate(lines, 1):
            m = re.match(r'\s*#\s*include\s*"([^"]+)"', ln)
            if m and not any(os.path.exists(os.path.join(a, m.group(1))) for a in LAYERS[d]):
                problems.append(f"{path}:{n}: includes \"{m.group(1)}\", which is not of "
                                f"{d}/ or a layer below it ({', '.join(LAYERS[d][1:]) or '-'})")
            if d in NO_FUSE and re.match(r"\s*#\s*include\s*<fuse", ln):
                problems.append(f"{path}:{n}: {d}/ includes a FUSE header")
    if not path.startswith(SIZED):
        return
    limit = DEBT.get(path, MAX_FILE_LINES)
    count = len(lines) - (1 if text.endswith("\n") else 0)
    if count > limit:
        problems.append(f"{path}: {count} lines (limit {limit}" +
                        (", its recorded debt: split it)" if path in DEBT else ")"))
    for name, n, length in functions(lines):
        if length > MAX_FUNCTION_LINES:
            problems.append(f"{path}:{n}: {name}() is {length} lines "
                            f"(limit {MAX_FUNCTION_LINES})")


def main():
    problems, files = [], []
    for root in ROOTS:
        for top, _, names in os.walk(root):
            files += [os.path.join(top, n) for n in sorted(names) if n.endswith((".c", ".h"))]
    for path in sorted(files):
        check_file(path, problems)
    for p in problems:
        print(p)
    print(f"lint: {len(files)} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
