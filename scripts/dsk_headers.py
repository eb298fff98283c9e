"""What the public C headers (include/dsk/*.h) declare, read with the standard library only.

The ABI checks (check_symbols.py, check_layout.py) and, later, the binding checks compare other
artifacts against this reading of the headers, so it is kept in one place. It is not a C parser: it
understands the subset of C the dsk headers are written in (object-like #defines, typedef'd structs
without nested braces, enums, one DSK_API declaration per function) and nothing more. A header that
leaves that subset makes the checks fail loudly rather than pass silently.
"""

import re
from pathlib import Path

# Object-like macros that have a value but are not ABI constants.
NOT_CONSTANTS = {"DSK_API"}

_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"|/\*.*?\*/|//[^\n]*', re.S)
_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)(\()?[ \t]*(.*)$")
_DSK_API_DECL = re.compile(r"\bDSK_API\b[^;(]*?\b(\w+)\s*\(")
# An enum body follows the last `enum ... {` before it; the C and C++ spellings of one enum head
# (`enum {` / `enum : int32_t {`) both survive preprocessor stripping, hence no braces in between.
_ENUM = re.compile(r"\benum\b\s*(?:\w+\s*)?(?::\s*\w+\s*)?\{([^{}]*)\}\s*(\w*)")
_STRUCT = re.compile(r"\bstruct\b\s*(\w+)?\s*\{([^{}]*)\}\s*(\w+)?\s*;")
_FUNC_PTR_FIELD = re.compile(r"\(\s*\*\s*(\w+)\s*\)")
_IDENT_AT_END = re.compile(r"(\w+)\s*(?:\[[^\]]*\]\s*)*$")


def _strip_comments(text):
    # Strings are kept so that a "/*" inside a literal is not taken for a comment.
    return _COMMENT_OR_STRING.sub(lambda m: m.group(0) if m.group(0).startswith('"') else " ", text)


def _logical_lines(text):
    return text.replace("\\\n", " ").split("\n")


class Header:
    """The declarations of one public header."""

    def __init__(self, path):
        self.path = Path(path)
        text = _strip_comments(self.path.read_text(encoding="utf-8"))
        code_lines = []
        self.defines = {}  # name -> value text, object-like macros with a value only
        for line in _logical_lines(text):
            if line.lstrip().startswith("#"):
                m = _DEFINE.match(line)
                if m and not m.group(2) and m.group(3).strip():
                    self.defines[m.group(1)] = m.group(3).strip()
                code_lines.append("")
            else:
                code_lines.append(line)
        self.code = "\n".join(code_lines)

    def functions(self):
        """Names of the functions declared with DSK_API, in order of appearance."""
        return [m.group(1) for m in _DSK_API_DECL.finditer(self.code)]

    def constants(self):
        """Public #define constants and enumerators: name -> value text as written."""
        out = {k: v for k, v in self.defines.items() if k not in NOT_CONSTANTS}
        for body, _ in _ENUM.findall(self.code):
            for item in body.split(","):
                item = item.strip()
                if item:
                    name, _, value = item.partition("=")
                    out[name.strip()] = value.strip()
        return out

    def enums(self):
        """Names of the typedef'd enums (their size is part of the ABI: structs store them)."""
        return [name for _, name in _ENUM.findall(self.code) if name]

    def structs(self):
        """Structs with a body: typedef name (or tag) -> field names in declaration order."""
        out = {}
        for tag, body, typedef_name in _STRUCT.findall(self.code):
            name = typedef_name or tag
            if not name:
                raise ValueError(f"{self.path}: a struct without a name: {body.strip()[:60]}")
            out[name] = _field_names(body, self.path, name)
        return out


def _split_top_level(text, sep):
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _field_names(body, path, struct_name):
    names = []
    for decl in _split_top_level(body, ";"):
        decl = decl.strip()
        if not decl:
            continue
        fp = _FUNC_PTR_FIELD.search(decl)
        if fp:
            names.append(fp.group(1))
            continue
        for declarator in _split_top_level(decl, ","):
            m = _IDENT_AT_END.search(declarator.strip())
            if not m:
                raise ValueError(f"{path}: cannot read a field of {struct_name}: {decl!r}")
            names.append(m.group(1))
    return names


def read_headers(paths):
    """Parses the given headers (sorted by name, so results are stable)."""
    return [Header(p) for p in sorted(paths, key=lambda p: Path(p).name)]


def public_headers(include_dir):
    """The C headers of include/dsk (dsk.hpp is C++ sugar over them and declares no ABI)."""
    return sorted(Path(include_dir).glob("*.h"))
