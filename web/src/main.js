// The playground Chronicle serves at /graphql: GraphiQL with the explorer and the headers
// editor, queries and mutations over HTTP to this page's own path, subscriptions over
// graphql-ws (graphql-transport-ws) to the same path. Every file it needs is bundled, so it
// loads nothing from another origin and runs under the service's Content-Security-Policy.
import "graphiql/setup-workers/vite";
import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./main.css";

import { explorerPlugin } from "@graphiql/plugin-explorer";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL, HISTORY_PLUGIN } from "graphiql";
import { createElement } from "react";
import { createRoot } from "react-dom/client";

const endpoint = new URL(window.location.pathname, window.location.href);
const subscriptionUrl = new URL(endpoint);
subscriptionUrl.protocol = endpoint.protocol === "https:" ? "wss:" : "ws:";

const fetcher = createGraphiQLFetcher({
  url: endpoint.href,
  subscriptionUrl: subscriptionUrl.href,
  // The service answers queries as one JSON body; subscriptions go over the websocket.
  enableIncrementalDelivery: false,
});

createRoot(document.getElementById("graphiql")).render(
  createElement(GraphiQL, {
    fetcher,
    plugins: [HISTORY_PLUGIN, explorerPlugin()],
    isHeadersEditorEnabled: true,
    defaultEditorToolsVisibility: "headers",
  }),
);
