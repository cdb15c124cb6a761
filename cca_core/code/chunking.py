"""Cut a source file into chunks: each function, each method (``Class.method``), each class's
own lines (its header, docstring and fields; its methods are chunks of their own), and the
lines between them in windows. Files of a language with no grammar here are windows of
lines. Grammars: tree-sitter-language-pack (pinned to a release that ships them compiled;
later ones download them at run time)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

LANGUAGES = {
    ".py": "python", ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript",
    ".ts": "typescript", ".tsx": "tsx", ".go": "go", ".rs": "rust", ".java": "java",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".rb": "ruby",
    ".php": "php", ".cs": "csharp", ".kt": "kotlin", ".scala": "scala", ".swift": "swift",
    ".sh": "bash", ".md": "markdown", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml",
    ".sql": "sql",
}
FUNCTIONS = frozenset({
    "function_definition", "function_declaration", "generator_function_declaration",
    "method_definition", "method_declaration", "constructor_declaration", "function_item",
    "method", "singleton_method", "function_signature_item",
})
CONTAINERS = frozenset({
    "class_definition", "class_declaration", "class_specifier", "struct_specifier",
    "interface_declaration", "enum_declaration", "struct_item", "enum_item", "trait_item",
    "impl_item", "class", "module", "object_declaration", "type_spec",
})
WRAPPERS = frozenset({"decorated_definition"})  # a definition with its decorators
MAX_CHUNK_CHARS = 20_000
MIN_WINDOW_LINES = 2  # of text, for the lines between definitions to make a chunk


@dataclass(frozen=True)
class Chunk:
    symbol: str | None
    kind: str  # function | method | class | lines
    start_line: int  # 1-based, inclusive
    end_line: int
    content: str


def language_of(path: str) -> str | None:
    dot = path.rfind(".")
    return LANGUAGES.get(path[dot:].lower()) if dot >= 0 else None


def chunk_file(source: str, language: str | None, window_lines: int) -> list[Chunk]:
    lines = source.splitlines()
    parser = _parser(language) if language else None
    definitions: list[Chunk] = []
    if parser is not None:
        tree = parser.parse(source.encode())
        _definitions(tree.root_node, "", lines, definitions)
    covered: set[int] = set()
    for chunk in definitions:
        covered.update(range(chunk.start_line, chunk.end_line + 1))
    gaps = _windows([n for n in range(1, len(lines) + 1) if n not in covered], lines, window_lines)
    return sorted(definitions + gaps, key=lambda chunk: chunk.start_line)


@lru_cache(maxsize=64)
def _parser(language: str) -> Any:
    from tree_sitter_language_pack import get_parser
    try:
        return get_parser(language)  # type: ignore[arg-type]
    except (LookupError, ValueError, Exception):  # a language the pack lacks: windows
        return None


def _definitions(node: Any, prefix: str, lines: list[str], out: list[Chunk]) -> None:
    children = node.named_children
    for index, child in enumerate(children):
        definition = child.child_by_field_name("definition") if child.type in WRAPPERS else child
        kind = definition.type if definition is not None else ""
        first = _doc_start(children, index) + 1
        if kind in FUNCTIONS:
            last = child.end_point[0] + 1
            out.append(Chunk(prefix + _name(definition), "method" if prefix else "function",
                             first, last, _text(lines, first, last)))
        elif kind in CONTAINERS:
            name = prefix + _name(definition)
            inner: list[Chunk] = []
            _definitions(definition, name + ".", lines, inner)
            end = min((c.start_line for c in inner), default=child.end_point[0] + 2) - 1
            head_end = max(end, child.start_point[0] + 1)
            out.append(Chunk(name, "class", first, head_end, _text(lines, first, head_end)))
            out.extend(inner)
        else:
            _definitions(child, prefix, lines, out)


def _doc_start(siblings: list[Any], index: int) -> int:
    """The 0-based first line of the definition at ``index`` with the comments right above
    it (Go, Rust, Java and TypeScript keep their doc comments there)."""
    start = siblings[index].start_point[0]
    while index > 0 and "comment" in siblings[index - 1].type \
            and siblings[index - 1].end_point[0] >= start - 1:
        index -= 1
        start = siblings[index].start_point[0]
    return start


def _name(node: Any) -> str:
    for field in ("name", "type", "declarator"):
        found = node.child_by_field_name(field)
        while found is not None and found.type not in ("identifier", "type_identifier",
                                                        "field_identifier", "constant",
                                                        "property_identifier", "name"):
            found = found.child_by_field_name("declarator") or found.child_by_field_name("name") \
                or (found.named_children[0] if found.named_children else None)
        if found is not None:
            return found.text.decode(errors="replace")
    return "<anonymous>"


def _windows(numbers: list[int], lines: list[str], size: int) -> list[Chunk]:
    """Runs of uncovered lines, cut every ``size`` lines; runs of blank lines dropped."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1 and len(runs[-1]) < size:
            runs[-1].append(number)
        else:
            runs.append([number])
    chunks = []
    for run in runs:
        body = [lines[n - 1] for n in run]
        if sum(1 for line in body if line.strip()) >= MIN_WINDOW_LINES:
            chunks.append(Chunk(None, "lines", run[0], run[-1], _text(lines, run[0], run[-1])))
    return chunks


def _text(lines: list[str], first: int, last: int) -> str:
    return "\n".join(lines[first - 1:last])[:MAX_CHUNK_CHARS]
