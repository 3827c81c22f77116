// Package render draws the service's status page.
package render

import (
	"html/template"
	"io"
	"runtime"
	"time"
)

var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
}).Parse(`<!doctype html>
<html><head><title>{{.Name}} status</title></head>
<body>
<h1>{{.Name}}</h1>
<p>up {{ago .Started}}, {{.Goroutines}} goroutines, Go {{.Version}}</p>
<table>
<tr><th>route</th><th>requests</th></tr>
{{range .Routes}}<tr><td>{{.Name}}</td><td>{{.Count}}</td></tr>
{{end}}</table>
</body></html>
`))

// Route is a row of the page.
type Route struct {
	Name  string
	Count int64
}

// Status is what the page shows.
type Status struct {
	Name       string
	Started    time.Time
	Goroutines int
	Version    string
	Routes     []Route
}

// Page writes the status page.
func Page(w io.Writer, name string, started time.Time, routes []Route) error {
	return page.Execute(w, Status{Name: name, Started: started, Goroutines: runtime.NumGoroutine(), Version: runtime.Version(), Routes: routes})
}
