"""A tiny document model rendered to both Markdown and HTML, so every report (demo, eval, audit) is written once."""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", items))

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def image(self, path: str, caption: str) -> None:
        self.blocks.append(("image", (path, caption)))

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, content in self.blocks:
            if kind == "heading":
                out += [f"## {content}", ""]
            elif kind == "paragraph":
                out += [str(content), ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in content] + [""]
            elif kind == "table":
                header, rows = content
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
                out.append("")
            elif kind == "image":
                path, caption = content
                out += [f"![{caption}]({path})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, content in self.blocks:
            if kind == "heading":
                body.append(f"<h2>{html.escape(content)}</h2>")
            elif kind == "paragraph":
                body.append(f"<p>{_inline(content)}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in content) + "</ul>")
            elif kind == "table":
                header, rows = content
                head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                cells = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            elif kind == "image":
                path, caption = content
                body.append(f'<figure><img src="{html.escape(path)}" alt="{html.escape(caption)}">'
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        style = ("body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.45}"
                 "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}"
                 "img{max-width:100%}figcaption{font-style:italic;color:#555}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _inline(text: str) -> str:
    """Escape, then turn Markdown `code` and **bold** into HTML."""
    import re

    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
