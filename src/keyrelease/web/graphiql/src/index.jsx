// keyrelease's GraphiQL: the npm `graphiql` package bundled with every script, style sheet,
// font and Monaco worker it needs, so /graphql loads nothing from another origin and runs
// under a Content-Security-Policy with script-src 'self'. Built by build.mjs (`make graphiql`).

import "graphiql/style.css";
import "./page.css";

import { GraphiQL } from "graphiql";
import { createRoot } from "react-dom/client";

import { createFetcher } from "./fetcher.js";
import { headerFreeStorage } from "./storage.js";

// Monaco's workers, bundled beside this file (build.mjs): loaded from this origin.
const worker = (name) => new Worker(new URL(`./${name}.worker.js`, import.meta.url), { name });
globalThis.MonacoEnvironment = {
  getWorker(_moduleId, label) {
    if (label === "graphql") return worker("graphql");
    if (label === "json") return worker("json");
    return worker("editor");
  },
};

export const TOKEN_HINT = "Bearer <token from keyrelease admin create>";
const DEFAULT_HEADERS = JSON.stringify({ Authorization: TOKEN_HINT }, null, 2);
const DEFAULT_QUERY = `# keyrelease GraphQL API.
# Admin operations need your admin token: in Headers below,
# replace <token from keyrelease admin create> with it.
# Run with Ctrl-Enter. The schema is in the Documentation
# Explorer (the book icon, top left).

query Me {
  me {
    name
    email
    institution {
      name
    }
  }
}
`;

const root = document.getElementById("graphiql");
root.textContent = "";
createRoot(root).render(
  <GraphiQL
    fetcher={createFetcher(window.location.pathname)}
    storage={headerFreeStorage()}
    shouldPersistHeaders={false}
    showPersistHeadersSettings={false}
    defaultHeaders={DEFAULT_HEADERS}
    defaultQuery={DEFAULT_QUERY}
    defaultEditorToolsVisibility="headers"
  />,
);
