// Build GraphiQL for keyrelease: `node build.mjs [outdir]` (default: the package's
// src/keyrelease/web/static/graphiql/). Writes
//   graphiql.js, graphiql.css          the page's module and style sheet
//   {editor,json,graphql}.worker.js    Monaco's workers, loaded by graphiql.js from beside it
//   fonts/*                            every font the style sheet names (none inlined)
//   LICENSES.txt                       the licence of every npm package in those files
// The output depends only on package-lock.json and src/: no timestamps, no absolute paths, so
// tests/test_graphiql_build.py can check that the committed files are what this builds.

import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(process.argv[2] ?? path.join(HERE, "../static/graphiql"));

/** Packages published without their licence file, and the package of the same repository
 * whose file it is: react-compiler-runtime comes from github.com/facebook/react ("licensed
 * under the MIT license found in the LICENSE file in the root directory"), the GraphiQL
 * plugins from github.com/graphql/graphiql. */
const LICENCE_FROM = {
  "react-compiler-runtime": "node_modules/react",
  "@graphiql/plugin-doc-explorer": "node_modules/graphiql",
  "@graphiql/plugin-history": "node_modules/graphiql",
};
/** An MIT package with no licence file anywhere: the MIT licence's text, naming the author its
 * package.json names (react-remove-scroll-bar, by Anton Korzunov). */
const MIT_TEXT = `MIT License

Copyright (c) AUTHOR

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.`;

const common = {
  absWorkingDir: HERE,
  bundle: true,
  minify: true,
  legalComments: "none", // the licences are in LICENSES.txt, whole
  charset: "utf8",
  target: ["es2022", "chrome111", "firefox115", "safari16"],
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
  metafile: true,
  write: false,
};

const builds = await Promise.all([
  esbuild.build({
    ...common,
    entryPoints: { graphiql: "src/index.jsx" },
    format: "esm",
    jsx: "automatic",
    outdir: OUT,
    loader: { ".ttf": "file", ".woff": "file", ".woff2": "file" },
    assetNames: "fonts/[name]-[hash]",
  }),
  ...["editor", "json", "graphql"].map((name) =>
    esbuild.build({
      ...common,
      entryPoints: { [`${name}.worker`]: workerEntry(name) },
      format: "iife",
      outdir: OUT,
    }),
  ),
]);

function workerEntry(name) {
  return {
    editor: "monaco-editor/esm/vs/editor/editor.worker.js",
    json: "monaco-editor/esm/vs/language/json/json.worker.js",
    graphql: "monaco-graphql/esm/graphql.worker.js",
  }[name];
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(path.join(OUT, "fonts"), { recursive: true });

const written = new Map();
for (const build of builds) {
  for (const file of build.outputFiles) {
    const name = path.relative(OUT, file.path).split(path.sep).join("/");
    let contents = Buffer.from(file.contents);
    if (name.endsWith(".css")) contents = Buffer.from(extractFonts(contents.toString("utf8")));
    written.set(name, contents);
  }
}

/** Fonts inlined as data: URLs become files beside the style sheet (font-src 'self'). */
function extractFonts(css) {
  return css.replace(/url\((["']?)data:font\/([a-z0-9]+);base64,([A-Za-z0-9+/=]+)\1\)/g, (_, _q, type, data) => {
    const bytes = Buffer.from(data, "base64");
    const digest = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
    const name = `fonts/inline-${digest}.${type}`;
    written.set(name, bytes);
    return `url(${name.replace("fonts/", "./fonts/")})`;
  });
}

for (const [name, contents] of written) {
  writeFileSync(path.join(OUT, name), contents);
}
writeFileSync(path.join(OUT, "LICENSES.txt"), licences(builds));

const leftover = [...written.keys()].filter((name) => name.endsWith(".css"))
  .map((name) => written.get(name).toString("utf8"))
  .some((css) => /url\(["']?(data:font|https?:|\/\/)/.test(css));
if (leftover) {
  console.error("a style sheet still names an inline font or another origin");
  process.exit(1);
}
for (const name of [...written.keys(), "LICENSES.txt"].sort()) {
  const size = name === "LICENSES.txt" ? readFileSync(path.join(OUT, name)).length : written.get(name).length;
  console.log(`${String(size).padStart(9)}  ${name}`);
}

/** The licence text of every npm package whose code is in the output, by package name. */
function licences(results) {
  const packages = new Map();
  for (const result of results) {
    for (const input of Object.keys(result.metafile.inputs)) {
      const match = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
      if (match) packages.set(match[1], true);
    }
  }
  const entries = [];
  for (const dir of packages.keys()) {
    const manifest = JSON.parse(readFileSync(path.join(HERE, dir, "package.json"), "utf8"));
    const source = path.join(HERE, LICENCE_FROM[manifest.name] ?? dir);
    const file = readdirSync(source).sort().find((f) => /^(licen[cs]e|copying)([.-]|$)/i.test(f));
    let text;
    if (file) {
      text = readFileSync(path.join(source, file), "utf8").replace(/\r\n/g, "\n").trim();
    } else if (manifest.license === "MIT" && typeof manifest.author === "string") {
      const author = manifest.author.replace(/\s*<[^>]*>/, "");
      text = `(${manifest.name} ships no licence file; its package.json says MIT, by ${author}.)\n\n${MIT_TEXT.replace("AUTHOR", author)}`;
    } else {
      console.error(`${manifest.name}: no licence file in the package`);
      process.exit(1);
    }
    entries.push({ id: `${manifest.name}@${manifest.version}`, license: manifest.license ?? "see text", text });
  }
  entries.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const header = [
    "Third-party software in keyrelease's GraphiQL page (src/keyrelease/web/static/graphiql/),",
    "bundled from npm by src/keyrelease/web/graphiql/build.mjs. Each package's licence follows, whole.",
    "",
    ...entries.map((e) => `  ${e.id} (${e.license})`),
    "",
  ].join("\n");
  return header + entries.map((e) => `\n${"=".repeat(78)}\n${e.id} (${e.license})\n${"=".repeat(78)}\n\n${e.text}\n`).join("");
}

if (!existsSync(path.join(OUT, "graphiql.js"))) process.exit(1);
