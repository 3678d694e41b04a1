// Parse Mermaid diagrams with Mermaid's own parser. Input on stdin: a JSON array of diagram sources.
// Output on stdout: a JSON array, per source {"ok": true, "type": "flowchart-v2"} or {"ok": false, "error": "..."};
// a gantt chart also lists its tasks as Mermaid will draw them ({"tasks": ["at 5%", "gate", ...]}).
// Mermaid's parser sanitises labels with DOMPurify, which needs a DOM: jsdom provides one (no browser).
import { JSDOM } from "jsdom";

const { window } = new JSDOM("");
globalThis.window = window;
globalThis.document = window.document;
const mermaid = (await import("mermaid")).default;
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const source of JSON.parse(input)) {
  try {
    const result = await mermaid.parse(source);
    const entry = { ok: true, type: result.diagramType };
    if (result.diagramType === "gantt") {
      // What Mermaid will draw: a line its lexer takes for a comment parses fine and is simply not there.
      const diagram = await mermaid.mermaidAPI.getDiagramFromText(source);
      entry.tasks = diagram.db.getTasks().map((task) => task.task.trim());
    }
    out.push(entry);
  } catch (error) {
    out.push({ ok: false, error: String(error && error.message ? error.message : error).slice(0, 2000) });
  }
}
process.stdout.write(JSON.stringify(out));
