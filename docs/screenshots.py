"""HTML pages for docs/screenshots.sh: a PR comment as GitHub shows it, or command output in a terminal.

    python docs/screenshots.py comment COMMENT.md OUT.html --mermaid PATH/mermaid.min.js
    python docs/screenshots.py terminal OUTPUT.txt OUT.html

The comment is rendered as GitHub-flavoured Markdown (markdown-it-py's gfm-like preset: tables,
strikethrough, autolinks, raw HTML such as <details>), its ```mermaid blocks drawn by Mermaid's own
browser bundle, loaded from the local npm install. When the page is drawn it sets `data-height` on <body>,
which the script reads to size the screenshot.
"""

from __future__ import annotations

import argparse
import html
import re
from collections.abc import Sequence
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

# GitHub's look, in the few rules these pages need (colours from GitHub's light theme).
STYLE = """
body { margin: 0; padding: 16px; background: #fff; color: #1f2328; font: 14px/1.5 -apple-system,
  "Segoe UI", "Noto Sans", "Liberation Sans", Arial, sans-serif, "Noto Color Emoji"; }
#frame { display: inline-block; }
.comment { width: 800px; border: 1px solid #d1d9e0; border-radius: 6px; }
.comment-header { background: #f6f8fa; border-bottom: 1px solid #d1d9e0; border-radius: 6px 6px 0 0;
  padding: 8px 16px; color: #59636e; display: flex; align-items: center; gap: 8px; }
.comment-header b { color: #1f2328; }
.avatar { width: 20px; height: 20px; border-radius: 4px; background: #2f81f7; color: #fff; font-size: 11px;
  font-weight: 700; display: inline-flex; align-items: center; justify-content: center; }
.badge { border: 1px solid #d1d9e0; border-radius: 2em; padding: 0 7px; font-size: 12px; }
.markdown-body { padding: 16px; }
.markdown-body > :first-child { margin-top: 0; }
h2, h3 { font-weight: 600; line-height: 1.25; margin: 24px 0 16px; }
h2 { font-size: 1.5em; padding-bottom: .3em; border-bottom: 1px solid #d1d9e0b3; }
h3 { font-size: 1.25em; }
p, table, blockquote, ul, details, pre { margin: 0 0 16px; }
table { border-collapse: collapse; display: block; width: max-content; max-width: 100%; overflow: auto; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
th { font-weight: 600; }
tr:nth-child(2n) { background: #f6f8fa; }
code { font: 85% ui-monospace, "DejaVu Sans Mono", monospace; background: #818b981f; border-radius: 6px;
  padding: .2em .4em; }
blockquote { color: #59636e; border-left: .25em solid #d1d9e0; padding: 0 1em; }
ul { padding-left: 2em; }
summary { cursor: pointer; }
a, .mention { color: #0969da; text-decoration: none; }
.mention { font-weight: 600; color: #1f2328; }
pre.mermaid { background: none; text-align: center; border: 1px solid #d1d9e0; border-radius: 6px;
  padding: 8px; }
.terminal { box-sizing: border-box; width: 960px; background: #0d1117; color: #e6edf3; border-radius: 6px;
  padding: 14px 16px; font: 13px/1.45 "DejaVu Sans Mono", monospace; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.terminal .prompt { color: #7ee787; }
"""

# Drawing the diagrams is asynchronous: the page says when it is done, and how tall it is then.
DRAW = """
<script src="{mermaid}"></script>
<script>
mermaid.initialize({{ startOnLoad: false, securityLevel: "strict", theme: "default" }});
mermaid.run({{ querySelector: "pre.mermaid" }}).finally(() => {{
  const box = document.getElementById("frame").getBoundingClientRect();
  document.body.dataset.height = String(Math.ceil(box.bottom) + 16);
}});
</script>
"""
MEASURE = """
<script>
document.body.dataset.height = String(Math.ceil(document.getElementById("frame")
  .getBoundingClientRect().bottom) + 16);
</script>
"""

# @login and @org/team, as GitHub links them (a zero-width space after "@" keeps a name from mentioning).
MENTION = re.compile(r"(?<![\w/@])@([A-Za-z0-9][A-Za-z0-9-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)?)")


def markdown() -> MarkdownIt:
    md = MarkdownIt("gfm-like")
    fence = md.renderer.rules["fence"]

    def mermaid_fence(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
                      env: EnvType) -> str:
        token = tokens[idx]
        if token.info.strip() == "mermaid":
            return f'<pre class="mermaid">{html.escape(token.content)}</pre>\n'
        return str(fence(tokens, idx, options, env))

    md.add_render_rule("fence", mermaid_fence)
    return md


def mentions(body: str) -> str:
    """Link mentions in text, never inside tags or code."""
    parts = re.split(r"(<code>.*?</code>|<pre.*?</pre>|<[^>]*>)", body, flags=re.S)
    return "".join(p if p.startswith("<") else MENTION.sub(r'<span class="mention">@\1</span>', p)
                   for p in parts)


def page(body: str, script: str) -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><style>{STYLE}</style></head>'
            f'<body><div id="frame">{body}</div>{script}</body></html>\n')


def comment_page(text: str, mermaid_js: Path) -> str:
    body = mentions(markdown().render(text))
    header = ('<div class="comment-header"><span class="avatar">A</span><b>github-actions</b>'
              '<span class="badge">bot</span> commented</div>')
    frame = f'<div class="comment">{header}<div class="markdown-body">{body}</div></div>'
    return page(frame, DRAW.format(mermaid=html.escape(mermaid_js.resolve().as_uri())))


def terminal_page(text: str) -> str:
    lines = [html.escape(line) for line in text.rstrip("\n").split("\n")]
    lines = [f'<span class="prompt">{line}</span>' if line.startswith("$ ") else line for line in lines]
    return page('<div class="terminal">' + "\n".join(lines) + "</div>", MEASURE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["comment", "terminal"])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mermaid", type=Path, help="Mermaid's browser bundle (mermaid.min.js)")
    args = parser.parse_args()
    text = args.source.read_text(encoding="utf-8")
    if args.kind == "comment":
        if args.mermaid is None or not args.mermaid.is_file():
            parser.error("comment pages need --mermaid PATH/mermaid.min.js")
        args.out.write_text(comment_page(text, args.mermaid), encoding="utf-8")
    else:
        args.out.write_text(terminal_page(text), encoding="utf-8")


if __name__ == "__main__":
    main()
