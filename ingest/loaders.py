"""Knowledge files to chunks: read .md/.txt/.html, keep their headings, split by size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}
# Bump when chunking changes, so every source is re-chunked on the next ingest.
CHUNKER_VERSION = "md-headers+recursive-900/120.v1"
CHUNK_SIZE = 900
CHUNK_OVERLAP = 120


@dataclass(frozen=True)
class Chunk:
    """A piece of a source document with the headings it sits under."""

    text: str
    title: str
    section: str


def html_to_markdown(html: str) -> str:
    """Keep an HTML article's headings and paragraphs as Markdown the splitter understands."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "footer"]):
        tag.decompose()
    lines: list[str] = []
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for element in soup.find_all(["h1", "h2", "h3", "p", "li"]):
        text = element.get_text(" ", strip=True)
        if not text:
            continue
        name = element.name or ""
        if name.startswith("h"):
            lines.append(f"\n{'#' * int(name[1])} {text}\n")
        elif name == "li":
            lines.append(f"- {text}")
        else:
            lines.append(f"{text}\n")
    if title and not any(line.lstrip().startswith("# ") for line in lines):
        lines.insert(0, f"# {title}\n")
    return "\n".join(lines)


def load_markdown(path: Path) -> str:
    """A source file as Markdown: .md as is, HTML converted, plain text titled by its first line."""
    raw = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in {".html", ".htm"}:
        return html_to_markdown(raw)
    if suffix == ".txt":
        first, _, rest = raw.strip().partition("\n")
        return f"# {first.strip()}\n\n{rest.strip()}\n"
    return raw


def chunk_markdown(markdown: str, fallback_title: str) -> list[Chunk]:
    """Split on headings first (each chunk knows its section), then by size."""
    by_header = MarkdownHeaderTextSplitter(
        headers_to_split_on=[("#", "title"), ("##", "section"), ("###", "subsection")],
        strip_headers=True,
    ).split_text(markdown)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_SIZE,
        chunk_overlap=CHUNK_OVERLAP,
        separators=["\n\n", "\n", ". ", " ", ""],
    )
    chunks: list[Chunk] = []
    for doc in by_header:
        title = str(doc.metadata.get("title") or fallback_title)
        section = " — ".join(
            str(doc.metadata[key]) for key in ("section", "subsection") if doc.metadata.get(key)
        )
        for piece in splitter.split_text(doc.page_content):
            if piece.strip():
                chunks.append(Chunk(text=piece.strip(), title=title, section=section))
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """What gets embedded: the chunk with its headings, so a bare list still has a topic."""
    heading = " — ".join(part for part in (chunk.title, chunk.section) if part)
    return f"{heading}\n{chunk.text}" if heading else chunk.text


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest, read once."""

    name: str
    data: bytes
    markdown: str
    fallback_title: str


def read_sources(path: Path) -> tuple[list[SourceFile], str | None]:
    """The files under `path` and, for a folder, the source prefix that folder owns.

    Names are relative to the folder given (prefixed by its name), so they survive a fresh
    clone elsewhere, and two folders ingested for one agent do not prune each other.
    """
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}")
    if path.is_file():
        pairs, folder = [(path, path.name)], None
    else:
        folder = f"{path.resolve().name}/"
        pairs = [
            (file, f"{folder}{file.relative_to(path).as_posix()}")
            for file in sorted(path.rglob("*"))
            if file.is_file() and file.suffix.lower() in SUFFIXES
        ]
    if not pairs:
        raise ValueError(f"No .md, .txt or .html files under {path}")
    files = [
        SourceFile(
            name=name,
            data=file.read_bytes(),
            markdown=load_markdown(file),
            fallback_title=file.stem.replace("-", " "),
        )
        for file, name in pairs
    ]
    return files, folder
