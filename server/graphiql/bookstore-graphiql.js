// Starts GraphiQL in #graphiql. The endpoint comes from the element's data-endpoint
// attribute, so the page has no inline script and can be served with a strict
// Content-Security-Policy (script-src 'self').
(function () {
  'use strict';
  var root = document.getElementById('graphiql');
  var url = new URL(root.getAttribute('data-endpoint'), window.location.href).href;
  // Subscriptions go over graphql-transport-ws on the same endpoint; GraphiQL sends the
  // Headers tab as the connection_init payload, so {"authorization": "Bearer <token>"}
  // signs the socket in as it signs in queries.
  var wsUrl = url.replace(/^http/, 'ws');
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: wsUrl });
  var defaultQuery = [
    '# Ctrl-Enter runs the query.',
    '# Ctrl-Space completes; Docs browses the schema.',
    'query FirstBooks {',
    '  books(first: 5, sort: BESTSELLING) {',
    '    totalCount',
    '    edges {',
    '      node {',
    '        title',
    '        priceCents',
    '        authors { name }',
    '      }',
    '    }',
    '  }',
    '}',
    ''
  ].join('\n');
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultEditorToolsVisibility: true
    })
  );
})();
