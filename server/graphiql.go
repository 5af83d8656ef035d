package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// The GraphiQL IDE, React and the page's own script and style, vendored in graphiql/
// (versions, licences and how the files were made: graphiql/README.md). Nothing is
// loaded from elsewhere, so the IDE works offline and under a strict CSP.
//
//go:embed graphiql/*.js graphiql/*.css graphiql/LICENSES.txt
var graphiqlFiles embed.FS

// graphiqlCSP allows the page only its own scripts, styles, fonts and images, and
// requests to its own origin (the GraphQL endpoint; CSP3 'self' covers same-origin
// WebSockets too). Styles need 'unsafe-inline': GraphiQL's components set some with
// <style> elements; fonts and icons are data: URIs inside graphiql's CSS.
const graphiqlCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// graphiqlPrefix is where the assets are served; the page itself is served at / (and at
// graphiqlPrefix).
const graphiqlPrefix = "/graphiql/"

var graphiqlPage = template.Must(template.New("graphiql").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bookstore API · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{call .Asset "graphiql-3.8.3.min.css"}}">
<link rel="stylesheet" href="{{call .Asset "bookstore-graphiql.css"}}">
</head>
<body>
<div id="graphiql" data-endpoint="{{.Endpoint}}"><p class="graphiql-loading">Loading GraphiQL…</p></div>
<noscript>GraphiQL needs JavaScript.</noscript>
<script src="{{call .Asset "react-18.3.1.production.min.js"}}"></script>
<script src="{{call .Asset "react-dom-18.3.1.production.min.js"}}"></script>
<script src="{{call .Asset "graphiql-3.8.3.min.js"}}"></script>
<script src="{{call .Asset "bookstore-graphiql.js"}}"></script>
</body>
</html>
`))

type graphiqlAsset struct {
	contentType string
	body        []byte
	version     string // content hash: the ?v= of the page's links, and the ETag

	gzipOnce sync.Once
	gzipped  []byte // compressed on first request, then kept
}

type graphiqlHandler struct {
	page   []byte
	assets map[string]*graphiqlAsset // by request path
}

// GraphiQL returns the handler of the in-browser IDE pointed at endpoint: the page at
// "/" (and "/graphiql/"), its assets under "/graphiql/". Asset links carry a content
// hash (?v=...), so the assets are cached for a year and a new build is fetched at once.
func GraphiQL(endpoint string) http.Handler {
	h := &graphiqlHandler{assets: map[string]*graphiqlAsset{}}
	entries, err := fs.ReadDir(graphiqlFiles, "graphiql")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		body, err := graphiqlFiles.ReadFile("graphiql/" + e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(body)
		h.assets[graphiqlPrefix+e.Name()] = &graphiqlAsset{
			contentType: contentTypeOf(e.Name()),
			body:        body,
			version:     hex.EncodeToString(sum[:8]),
		}
	}
	var page bytes.Buffer
	err = graphiqlPage.Execute(&page, struct {
		Endpoint string
		Asset    func(string) string
	}{endpoint, func(name string) string {
		a, ok := h.assets[graphiqlPrefix+name]
		if !ok {
			panic("graphiql: asset " + name + " is not embedded")
		}
		return graphiqlPrefix + name + "?v=" + a.version
	}})
	if err != nil {
		panic(err)
	}
	h.page = page.Bytes()
	return h
}

func contentTypeOf(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	default:
		return "text/plain; charset=utf-8"
	}
}

func (h *graphiqlHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", graphiqlCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/" || r.URL.Path == graphiqlPrefix {
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.page))
		return
	}
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Add("Vary", "Accept-Encoding")
	if r.URL.Query().Get("v") == a.version {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache") // revalidate by ETag
	}
	body, etag := a.body, `"`+a.version+`"`
	if acceptsGzip(r) {
		body, etag = a.gzip(), `"`+a.version+`-gz"`
		hdr.Set("Content-Encoding", "gzip")
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (a *graphiqlAsset) gzip() []byte {
	a.gzipOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(a.body)
		_ = zw.Close()
		a.gzipped = b.Bytes()
	})
	return a.gzipped
}

// acceptsGzip: Accept-Encoding names gzip without q=0.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			p := strings.ReplaceAll(strings.ToLower(params), " ", "")
			return p != "q=0" && p != "q=0.0" && p != "q=0.00" && p != "q=0.000"
		}
	}
	return false
}
